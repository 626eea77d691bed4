"""PersuadeGym (UserRL, spec §1.5): talk a simulated persuadee out of a claim it strongly agrees with.

The persuadee holds a claim and its own initial argument for it, and starts at "Strongly Agree" on the
7-point scale SA, A, PA, N, PD, D, SD. Verbs (spec §1.3):
- `[action] argument` and `[answer] argument` are both arguments: the persuadee replies with JSON
  {thought, response, stance}; reward = clamp(idx(new) - idx(previous), 0, 6) / 6, so moving back or
  staying pays 0 and moving forward again after moving back pays again (spec §1.5's noted exploit, kept);
  the episode ends when the stance reaches "Strongly Disagree";
- `[finish]` ends the episode; `max_steps` truncates it.

Rules responder (`persuade.argue`), a truthful test fixture (issue 17): the persuadee's stances are
structured: each task lists `counterpoints`, each a `point` (a proposition the persuadee does not hold yet and
concedes once it is argued) with optional other wordings in `says`. An argument concedes a point when one of its
sentences states the point (contains its words in order, not negated, not hedged: `rltrain.envs.questions`);
the stance moves two levels toward disagreement for a point conceded for the first time. An argument that
states two or more points is a list, not an argument, and concedes nothing (so listing every point, however
often, earns 0); a bag of keywords states no point at all. Three arguments, one point each, reach "Strongly Disagree". The rules
cannot judge free-text persuasion (docs/gyms.md): only the LLM persuadee scores that for training.
Malformed simulator JSON (or a stance off the scale) gives fallback feedback, reward 0,
an unchanged stance and `info["judge_error"]`; `UserSimError` propagates (see `rltrain.envs.judged`).
"""

from __future__ import annotations

from typing import Any

from rltrain.envs.base import ENVIRONMENTS, StepResult
from rltrain.envs.judged import JudgedGym, JudgeError, fenced_json
from rltrain.envs.questions import states
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


def conceded(argument: str, counterpoints: list[dict[str, Any]]) -> list[str]:
    """The counterpoints (by `point`) that `argument` states, in task order."""
    return [p["point"] for p in counterpoints if any(states(argument, w) for w in [p["point"], *p.get("says", [])])]


def one_point(argument: str, counterpoints: list[dict[str, Any]]) -> list[str]:
    """The one counterpoint `argument` states, or [] when it states none or several (a list is no argument)."""
    points = conceded(argument, counterpoints)
    return points if len(points) == 1 else []


@USER_RULES.register("persuade.argue")
def argue_back(request: UserRequest) -> str:
    """Two levels toward disagreement when the argument states exactly one counterpoint, not conceded before."""
    context = request.context
    earlier = {p for a in context["earlier_arguments"] for p in one_point(a, context["counterpoints"])}
    new = [p for p in one_point(context["argument"], context["counterpoints"]) if p not in earlier]
    stance = STANCES[min(len(STANCES) - 1, stance_index(context["stance"]) + 2 * len(new))]
    response = f"That is a fair point: {new[0]}. I am less sure now." if new else \
        f"I am not convinced. {context['persuadee_argument']}"
    return fenced_json({"thought": f"conceded: {new}", "response": response, "stance": stance})


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
