"""TelepathyGym (UserRL, spec §1.5): twenty questions against a simulated mind reader.

The simulated user thinks of a target entity. Verbs (spec §1.3):
- `[action] question`: the user answers Yes, No or Maybe (JSON {thought, response}); reward 0;
- `[answer] guess`: a judge says Yes or No (JSON {thought, judgment, feedback}, no partial credit);
  score 1.0 for Yes; reward = max(0, score - best so far), so a correct guess pays 1.0 once; a correct
  guess ends the episode;
- `[finish]` ends the episode; `max_steps` truncates it.

Rules responders (`telepathy.question`, `telepathy.guess`) are truthful test fixtures (issue 17): a question
is answered only from the entity's structured facts (`facts: {true: [...], false: [...]}`, built by
`rltrain.envs.taskgen.telepathy`) through the constrained grammar of `rltrain.envs.questions`: Yes or No when
the question is one proposition of the table (negations counted), else `CANNOT_ANSWER` ("Maybe"), never a
guess. A guess is right only when, after a lead-in such as "It is" or "My guess is", it IS the entity's name
or an alias; a guess that lists several names is wrong (keyword stuffing scores 0). Malformed simulator JSON gives fallback feedback, reward 0 and `info["judge_error"]`;
`UserSimError` propagates (see `rltrain.envs.judged`).
"""

from __future__ import annotations

import re
from typing import Any

from rltrain.envs.base import ENVIRONMENTS, StepResult
from rltrain.envs.judged import JudgedGym, fenced_json, normalize, one_of
from rltrain.envs.questions import NO_FACTS, Facts
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


CANNOT_ANSWER = "Maybe"
"""The reply to a question outside the grammar or not decided by the facts (UserRL's own third answer)."""
GUESS_LEAD_INS = re.compile(r"^(?:(?:i think|i guess|my guess is|my final guess is|the answer is|my answer is|"
                            r"it is|it s|its|is it|you are thinking of|are you thinking of)\s+)+")


def facts_of(data: dict[str, Any]) -> Facts:
    """A task's ground truth as a decidable table (`data["facts"]`)."""
    return Facts.of(data["facts"]["true"], data["facts"]["false"])


@USER_RULES.register("telepathy.question")
def answer_question(request: UserRequest) -> str:
    """Yes or No when the facts decide the question, else the "cannot answer" reply."""
    truth = Facts.of(**request.context["facts"]).decide(request.context["question"])
    if truth is None:
        return fenced_json({"thought": "cannot answer: not one proposition the facts decide", "response": CANNOT_ANSWER})
    return fenced_json({"thought": "decided by the facts", "response": "Yes" if truth else "No"})


def names_entity(guess: str, names: list[str]) -> bool:
    """Whether `guess` is one of `names` (after a lead-in and articles), not a list that contains one.

    >>> names_entity("It is an African Elephant!", ["Elephant", "African elephant"])
    True
    >>> names_entity("elephant, dolphin, shark", ["Elephant"])
    False
    """
    text = GUESS_LEAD_INS.sub("", normalize(guess))
    return normalize(text) in {normalize(n) for n in names}


@USER_RULES.register("telepathy.guess")
def judge_guess(request: UserRequest) -> str:
    """Yes when the guess is exactly the entity's name or one of its aliases (a list of candidates is wrong)."""
    right = names_entity(request.context["guess"], [request.context["entity"], *request.context["aliases"]])
    return fenced_json({"thought": "names the entity" if right else "does not name exactly the entity",
                        "judgment": "Yes" if right else "No",
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
                                    "attributes": data["attributes"], "facts": data.get("facts", NO_FACTS), what: text})

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
