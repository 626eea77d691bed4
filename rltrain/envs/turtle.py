"""TurtleGym (UserRL, spec §1.5): lateral-thinking "turtle soup" stories solved by questioning.

A story has a title, a surface (the puzzle the agent sees), a bottom (the hidden truth) and evaluation
criteria, a list of {statement, weight} whose weights sum to 1. Verbs (spec §1.3):
- `[action] question`: the simulated user, who knows surface and bottom, answers Yes, No or Maybe
  (JSON {thought, response}); reward 0;
- `[answer] story`: a judge scores every criterion in {0, 0.5, 1.0} (JSON {scores: [{statement, thought,
  score}], feedback}); score = sum of weight * judgment; reward = max(0, score - best so far), then best is
  updated (improvement-only), clipped to [0, 1]. The feedback lists only the statements judged 1.0, never the
  truth; the episode ends when score >= `success_threshold` (1.0, as UserRL's env manager sets it);
- `[finish]` ends the episode; `max_steps` truncates it.

Rules responders (`turtle.question`, `turtle.answer`) are truthful test fixtures (issue 17) that read only the
story's structured facts (`facts: {true, false}`, and per criterion the true `facts` that cover it; authored in
`rltrain.envs.taskgen.turtle`) through the grammar of `rltrain.envs.questions`. A question is answered Yes or
No when it is one proposition of the table, else `CANNOT_ANSWER` ("Maybe"). A story scores 1.0 on a criterion
when one of its clauses states one of the criterion's facts as the table has it (a false one by its
negation), else 0; a story with a clause that contradicts
the facts (a false explanation, or both sides of one) scores 0 on every criterion, so listing candidate
explanations earns nothing; a bag of keywords states no fact and scores 0. A free-text story the grammar cannot
read scores 0 here: only the LLM judge scores those (docs/gyms.md, "Which gyms a rules user can score").
Malformed simulator JSON (including a wrong number of scores or a score off {0, 0.5, 1}) gives fallback
feedback, reward 0 and `info["judge_error"]`; `UserSimError` propagates (see `rltrain.envs.judged`).
"""

from __future__ import annotations

import json
from typing import Any

from rltrain.envs.base import ENVIRONMENTS, StepResult
from rltrain.envs.judged import JudgedGym, JudgeError, fenced_json, one_of
from rltrain.envs.questions import NO_FACTS, Facts, key
from rltrain.users import USER_RULES, UserRequest

JUDGMENTS = (0.0, 0.5, 1.0)

QUESTION_SYSTEM = """You host a Turtle Soup (lateral thinking) game. The player sees the surface of the story and
asks questions to find the hidden truth (the bottom).
Surface: {surface}
Bottom (hidden truth): {bottom}
Answer the player's question with exactly one of "Yes" (true according to the bottom), "No" (false or
contradicting the bottom) or "Maybe" (neither the surface nor the bottom decides it; use it rarely).
Reply with JSON only, wrapped in ```json ... ```:
{{"thought": "how the question relates to the bottom", "response": "Yes" or "No" or "Maybe"}}"""

ANSWER_SYSTEM = """You grade a player's explanation of a Turtle Soup story against its hidden truth.
Surface: {surface}
Bottom (hidden truth): {bottom}
Evaluation criteria, in order:
{criteria}
Score every criterion 0 (wrong or missing), 0.5 (partly right) or 1.0 (fully right), in the same order, copying
each statement exactly. In the feedback tell the player ("you") only which parts are right; reveal nothing else.
Reply with JSON only, wrapped in ```json ... ```:
{{"scores": [{{"statement": "...", "thought": "...", "score": 0 or 0.5 or 1.0}}, ...], "feedback": "..."}}"""


CANNOT_ANSWER = "Maybe"
"""The reply to a question outside the grammar or not decided by the facts."""


def facts_of(data: dict[str, Any]) -> Facts:
    """A story's ground truth as a decidable table (`data["facts"]`)."""
    return Facts.of(data["facts"]["true"], data["facts"]["false"])


@USER_RULES.register("turtle.question")
def answer_question(request: UserRequest) -> str:
    """Yes or No when the story's facts decide the question, else the "cannot answer" reply."""
    truth = Facts.of(**request.context["facts"]).decide(request.context["question"])
    if truth is None:
        return fenced_json({"thought": "cannot answer: not one proposition the facts decide", "response": CANNOT_ANSWER})
    return fenced_json({"thought": "decided by the facts", "response": "Yes" if truth else "No"})


def story_judgments(story: str, facts: Facts, criteria: list[dict[str, Any]]) -> tuple[list[float], list[str]]:
    """Per criterion 1.0 when the story states one of its facts truly, else 0; all 0 when a clause contradicts the facts.

    Returns the judgments and the contradicting clauses.
    """
    wrong = facts.contradictions(story)
    if wrong:
        return [0.0] * len(criteria), wrong
    said = set(facts.asserted(story))  # no contradiction: every stated key agrees with the table
    return [1.0 if any(key(f) in said for f in c["facts"]) else 0.0 for c in criteria], []


@USER_RULES.register("turtle.answer")
def judge_story(request: UserRequest) -> str:
    """The rubric from the story's stated facts (see `story_judgments`)."""
    criteria = request.context["criteria"]
    judgments, wrong = story_judgments(request.context["story"], Facts.of(**request.context["facts"]), criteria)
    scores = [{"statement": c["statement"], "thought": "contradicted" if wrong else "stated" if j else "not stated",
               "score": j} for c, j in zip(criteria, judgments)]
    return fenced_json({"scores": scores, "feedback": "Part of your story contradicts the truth." if wrong
                        else "Thanks for your story."})


@ENVIRONMENTS.register("turtle")
class TurtleGym(JudgedGym):
    """Turtle soup: yes/no questions, rubric-judged stories, improvement-only reward."""

    name = "turtle"
    data_file = "turtle.json"
    goal = ("Solve a lateral-thinking puzzle (turtle soup). You see a strange story; find the hidden truth "
            "behind it by asking yes/no questions, then tell the full story.")
    verbs = {"action": "ask a yes/no question", "answer": "tell the full hidden story"}
    best: float = 0.0
    """Best rubric score of the episode: the reward pays improvements only."""

    def __init__(self, max_steps: int = 16, success_threshold: float = 1.0, step_penalty: float = 0.0,
                 normalize_rewards: bool = True) -> None:
        """Args:
            success_threshold: rubric score that solves the story and ends the episode (spec §1.5: 1.0).
            Others: see `JudgedGym`.
        """
        super().__init__(max_steps=max_steps, step_penalty=step_penalty, normalize_rewards=normalize_rewards)
        self.success_threshold = success_threshold

    def opening(self, data: dict[str, Any]) -> str:
        self.best = 0.0
        return f"{data['title']}\n\n{data['surface']}"

    def _request(self, what: str, text: str) -> UserRequest:
        data = self.data
        criteria = "\n".join(f"{i}. {c['statement']}" for i, c in enumerate(data["evaluation_criteria"], 1))
        system = (ANSWER_SYSTEM if what == "story" else QUESTION_SYSTEM).format(
            surface=data["surface"], bottom=data["bottom"], criteria=criteria)
        return UserRequest(hat="judge" if what == "story" else "user", system=system,
                           messages=({"role": "user", "content": text},),
                           rule="turtle.answer" if what == "story" else "turtle.question",
                           context={"bottom": data["bottom"], "criteria": data["evaluation_criteria"],
                                    "facts": data.get("facts", NO_FACTS), what: text})

    def _judgments(self, value: dict[str, Any]) -> list[float]:
        scores = value["scores"]
        expected = len(self.data["evaluation_criteria"])
        if not isinstance(scores, list) or len(scores) != expected:
            raise JudgeError(f"expected {expected} scores, got {json.dumps(scores)[:80]}")
        judgments = [float(s["score"]) if isinstance(s, dict) else float(s) for s in scores]
        if any(j not in JUDGMENTS for j in judgments):
            raise JudgeError(f"scores {judgments} are not all in {JUDGMENTS}")
        return judgments

    async def act(self, verb: str, content: str) -> StepResult:
        if verb == "action":
            reply = await self.ask_json(self._request("question", content),
                                        lambda v: one_of(v["response"], ("Yes", "No", "Maybe"), "response"))
            return StepResult(reply or "Feedback not available currently. Please try again.")
        judgments = await self.ask_json(self._request("story", content), self._judgments)
        if judgments is None:
            return StepResult("Feedback not available currently. Please try again.")
        criteria = self.data["evaluation_criteria"]
        # Rounded so that weights like 0.5 + 0.2 + 0.2 + 0.1 reach the threshold despite float sums.
        score = round(sum(c["weight"] * j for c, j in zip(criteria, judgments)), 6)
        reward, self.best = max(0.0, score - self.best), max(self.best, score)
        covered = [c["statement"] for c, j in zip(criteria, judgments) if j == 1.0]
        feedback = ("Here are the evaluation points your story covers:\n" + "\n".join(f"- {s}: Covered" for s in covered)
                    + "\nThere may be more hidden twists; keep asking and answering.") if covered else \
            "Your answer does not cover any evaluation point yet."
        return StepResult(feedback, reward=reward, terminated=score >= self.success_threshold,
                          info={"score": score, "best": self.best})
