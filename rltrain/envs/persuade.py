"""PersuadeGym (UserRL, spec §1.5): talk a simulated persuadee out of a claim it strongly agrees with.

The persuadee holds a claim and its own initial argument for it, and starts at "Strongly Agree" on the
7-point scale SA, A, PA, N, PD, D, SD. Verbs (spec §1.3):
- `[action] argument` and `[answer] argument` are both arguments: the persuadee replies with JSON
  {thought, response, stance}; reward = clamp(idx(new) - idx(previous), 0, 6) / 6, so moving back or
  staying pays 0 and moving forward again after moving back pays again (spec §1.5's noted exploit, kept);
  the episode ends when the stance reaches "Strongly Disagree";
- `[finish]` ends the episode; `max_steps` truncates it.

Rules responder (`persuade.argue`): each task lists counterpoints with keywords (used by the rules only). An
argument that raises a counterpoint not raised by an earlier argument moves the stance two levels toward
disagreement per new counterpoint (three counterpoints reach "Strongly Disagree"); otherwise the persuadee
restates its position. Malformed simulator JSON (or a stance off the scale) gives fallback feedback, reward 0,
an unchanged stance and `info["judge_error"]`; `UserSimError` propagates (see `rltrain.envs.judged`).
"""

from __future__ import annotations

from typing import Any

from rltrain.envs.base import ENVIRONMENTS, StepResult
from rltrain.envs.judged import JudgedGym, JudgeError, fenced_json, mentions
from rltrain.users import USER_RULES, UserRequest

STANCES = ("Strongly Agree", "Agree", "Partly Agree", "Neutral", "Partly Disagree", "Disagree", "Strongly Disagree")
ABBREVIATIONS = ("SA", "A", "PA", "N", "PD", "D", "SD")

PERSUADEE_SYSTEM = """You role-play a person in a debate. You hold this claim: {claim}
Your own argument for it: {argument}
Your current stance on the claim: {stance}.
The other person will argue against the claim. Consider each argument honestly: change your stance only when
an argument is genuinely convincing, and never by more than the argument deserves. Stance scale, from agreeing
to disagreeing: {scale}. Keep your response under 200 words.
Reply with JSON only, wrapped in ```json ... ```:
{{"thought": "how the argument affects your view", "response": "what you say back", "stance": "one of the scale"}}"""


def stance_index(value: Any) -> int:
    """Index of a stance on the 7-point scale, from its name or abbreviation (case-insensitive).

    >>> stance_index("partly disagree"), stance_index("SD")
    (4, 6)
    """
    text = value.strip().lower() if isinstance(value, str) else ""
    for i, (name, short) in enumerate(zip(STANCES, ABBREVIATIONS)):
        if text in (name.lower(), short.lower()):
            return i
    raise JudgeError(f"stance={value!r} is not on the scale {', '.join(STANCES)}")


@USER_RULES.register("persuade.argue")
def argue_back(request: UserRequest) -> str:
    """Two levels toward disagreement per counterpoint that this argument raises for the first time."""
    context = request.context
    earlier = [p["point"] for p in context["counterpoints"]
               if any(mentions(a, p["keywords"]) for a in context["earlier_arguments"])]
    new = [p["point"] for p in context["counterpoints"]
           if p["point"] not in earlier and mentions(context["argument"], p["keywords"])]
    stance = STANCES[min(len(STANCES) - 1, stance_index(context["stance"]) + 2 * len(new))]
    response = f"That is a fair point: {'; '.join(new)}. I am less sure now." if new else \
        f"I am not convinced. {context['persuadee_argument']}"
    return fenced_json({"thought": f"new counterpoints: {new}", "response": response, "stance": stance})


@ENVIRONMENTS.register("persuade")
class PersuadeGym(JudgedGym):
    """Persuasion: every argument moves (or not) the persuadee's stance; reward = levels gained / 6."""

    name = "persuade"
    data_file = "persuade.json"
    goal = ("Persuade the other person to disagree with a claim they strongly agree with. Argue with reasons "
            "and evidence; each argument may move their stance on a 7-point scale toward disagreement.")
    verbs = {"action": "make an argument", "answer": "make an argument"}
    stance: int = 0
    """Index of the persuadee's current stance in `STANCES` (0 = Strongly Agree)."""
    history: list[dict[str, str]]
    """The debate so far, as the persuadee sees it: the agent's arguments ("user") and its replies."""

    def opening(self, data: dict[str, Any]) -> str:
        self.stance, self.history = 0, []
        return (f"Claim: {data['claim']}\nI strongly agree with it. {data['argument']}\n"
                f"Try to change my mind.")

    async def act(self, verb: str, content: str) -> StepResult:
        data = self.data
        request = UserRequest(
            hat="user", messages=(*self.history, {"role": "user", "content": content}), rule="persuade.argue",
            system=PERSUADEE_SYSTEM.format(claim=data["claim"], argument=data["argument"], stance=STANCES[self.stance],
                                           scale=", ".join(STANCES)),
            context={"claim": data["claim"], "persuadee_argument": data["argument"], "stance": STANCES[self.stance],
                     "counterpoints": data["counterpoints"], "argument": content,
                     "earlier_arguments": [m["content"] for m in self.history if m["role"] == "user"]})
        reply = await self.ask_json(request, lambda v: (str(v["response"]), stance_index(v["stance"])))
        if reply is None:
            return StepResult("The other person did not respond. Please try again.")
        response, new = reply
        self.history += [{"role": "user", "content": content}, {"role": "assistant", "content": response}]
        reward = min(max(new - self.stance, 0), len(STANCES) - 1) / (len(STANCES) - 1)
        self.stance = new
        return StepResult(response, reward=reward, terminated=new == len(STANCES) - 1,
                          info={"stance": STANCES[new]})
