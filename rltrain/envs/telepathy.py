"""TelepathyGym (UserRL, spec §1.5): twenty questions against a simulated mind reader.

The simulated user thinks of a target entity. Verbs (spec §1.3):
- `[action] question`: the user answers Yes, No or Maybe (JSON {thought, response}); reward 0;
- `[answer] guess`: a judge says Yes or No (JSON {thought, judgment, feedback}, no partial credit);
  score 1.0 for Yes; reward = max(0, score - best so far), so a correct guess pays 1.0 once; a correct
  guess ends the episode;
- `[finish]` ends the episode; `max_steps` truncates it.

Rules responders (`telepathy.question`, `telepathy.guess`): Yes when the question mentions one of the
entity's listed attributes, No otherwise; a guess is right when its normalized text names the entity or one
of its aliases. Malformed simulator JSON gives fallback feedback, reward 0 and `info["judge_error"]`;
`UserSimError` propagates (see `rltrain.envs.judged`).
"""

from __future__ import annotations

from typing import Any

from rltrain.envs.base import ENVIRONMENTS, StepResult
from rltrain.envs.judged import JudgedGym, fenced_json, mentions, normalize, one_of
from rltrain.users import USER_RULES, UserRequest

QUESTION_SYSTEM = """You are a telepathic entity playing a mind reading game. You are thinking of: {entity}.
The player asks yes/no questions to find out what you are thinking of. Answer honestly:
"Yes" if the question is true of {entity}, "No" if it is false, "Maybe" only if it is ambiguous.
Never name the entity. Reply with JSON only, wrapped in ```json ... ```:
{{"thought": "how the question relates to {entity}", "response": "Yes" or "No" or "Maybe"}}"""

GUESS_SYSTEM = """You judge the final guess in a mind reading game. The target entity is: {entity}.
Answer "Yes" only if the guess names exactly this entity or a clearly equivalent name; otherwise "No".
There is no partial credit. In the feedback address the player as "you", stay brief, and never reveal the
target entity if the guess is wrong. Reply with JSON only, wrapped in ```json ... ```:
{{"thought": "your reasoning", "judgment": "Yes" or "No", "feedback": "one or two sentences"}}"""


@USER_RULES.register("telepathy.question")
def answer_question(request: UserRequest) -> str:
    """Yes when the question mentions one of the entity's attributes, else No."""
    hit = mentions(request.context["question"], request.context["attributes"])
    return fenced_json({"thought": f"mentions {hit}" if hit else "no listed attribute", "response": "Yes" if hit else "No"})


@USER_RULES.register("telepathy.guess")
def judge_guess(request: UserRequest) -> str:
    """Yes when the normalized guess contains the entity's name or one of its aliases as whole words."""
    names = [request.context["entity"], *request.context["aliases"]]
    right = bool(mentions(request.context["guess"], names)) or normalize(request.context["guess"]) in map(normalize, names)
    return fenced_json({"thought": "name match" if right else "no name match", "judgment": "Yes" if right else "No",
                        "feedback": "You got it!" if right else "That is not what I am thinking of. Keep asking."})


@ENVIRONMENTS.register("telepathy")
class TelepathyGym(JudgedGym):
    """Entity guessing with yes/no questions; judged guesses, improvement-only reward."""

    name = "telepathy"
    data_file = "telepathy.json"
    goal = ("I am thinking of an entity (a person, animal, object, place or concept). Find out what it is by "
            "asking yes/no questions, then guess it.")
    verbs = {"action": "ask a yes/no question", "answer": "guess the entity"}
    best: float = 0.0
    """Best guess score of the episode (0 or 1): the reward pays improvements only."""

    def opening(self, data: dict[str, Any]) -> str:
        self.best = 0.0
        return f"I am thinking of something in the category: {data['category']}. Ask me yes/no questions."

    def _request(self, what: str, text: str, system: str) -> UserRequest:
        data = self.data
        return UserRequest(hat="judge" if what == "guess" else "user", system=system.format(entity=data["target_entity"]),
                           messages=({"role": "user", "content": text},), rule=f"telepathy.{what}",
                           context={"entity": data["target_entity"], "aliases": data["aliases"],
                                    "attributes": data["attributes"], what: text})

    async def act(self, verb: str, content: str) -> StepResult:
        if verb == "action":
            reply = await self.ask_json(self._request("question", content, QUESTION_SYSTEM),
                                        lambda v: one_of(v["response"], ("Yes", "No", "Maybe"), "response"))
            return StepResult(reply or "Unable to respond to your question right now.")
        verdict = await self.ask_json(self._request("guess", content, GUESS_SYSTEM),
                                      lambda v: (one_of(v["judgment"], ("Yes", "No"), "judgment"), v.get("feedback")))
        if verdict is None:
            return StepResult("Unable to evaluate your guess right now.")
        judgment, feedback = verdict
        score = 1.0 if judgment == "Yes" else 0.0
        reward, self.best = max(0.0, score - self.best), max(self.best, score)
        if not isinstance(feedback, str) or not feedback.strip():
            feedback = "Correct!" if score else "That is not it."
        return StepResult(feedback, reward=reward, terminated=score >= 1.0)
