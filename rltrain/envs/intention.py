"""IntentionGym (UserRL, spec §1.5): ask a vague requester the clarifying questions that matter.

A task is a vague request, its category and hidden missing details, each {description, importance in
{1, 2, 3}, inquiry (an example question)}. Verbs (spec §1.3):
- `[action] question`: two simulated-user calls. (a) An evaluator judge sees the remaining missing details
  labelled LOW/MEDIUM/HIGH and the last 3 exchanges, and returns JSON {thought, is_task_related,
  covered_detail_indices}. (b) A responder role-plays the requester WITHOUT the hidden list (task, category,
  last 3 exchanges only) and answers in plain text. With k >= 1 details covered,
  reward = max(0, {3: 1.0, 2: 0.7, 1: 0.4}[highest importance covered] - multi_detail_penalty * (k - 1)),
  else 0; covered details are removed; the episode ends when none remain;
- `[finish]` ends the episode; `max_steps` truncates it. `[answer]` and `[search]` are not offered.

Rules responders, truthful test fixtures (issue 17): `intention.evaluate` covers a remaining detail only when the
question IS that detail's question: its canonical form (`rltrain.envs.questions.parse`) equals that of the
detail's `inquiry` or of one of its other wordings `asks`; a compound question, a list of keywords or anything
else covers nothing (never a guess). `intention.respond` answers with the descriptions of the details just
covered (passed in `context` for the rules only; the responder's LLM prompt never contains them), or with
`CANNOT_ANSWER`. The rules can score only questions in this grammar (docs/gyms.md).
A malformed evaluator reply gives reward 0, removes nothing and sets `info["judge_error"]`; the
responder's plain text cannot be malformed. `UserSimError` propagates (see `rltrain.envs.judged`).
"""

from __future__ import annotations

from typing import Any

from rltrain.envs.base import ENVIRONMENTS, StepResult
from rltrain.envs.judged import JudgedGym, JudgeError, fenced_json
from rltrain.envs.questions import parse
from rltrain.users import USER_RULES, UserRequest

IMPORTANCE_REWARD = {3: 1.0, 2: 0.7, 1: 0.4}
LABELS = {3: "HIGH", 2: "MEDIUM", 1: "LOW"}
HISTORY = 3
"""Exchanges the evaluator and the responder see (spec §1.5: the last 3)."""

EVALUATOR_SYSTEM = """You evaluate a clarifying question an assistant asked about a vague user request.
Request: {task}
Category: {category}
Details the request leaves out, numbered, with their importance:
{details}
Recent conversation:
{recent}
Decide whether the assistant's question is related to the task, and which of the numbered details it asks
about (directly enough that the user's answer would reveal the detail). List only numbers shown above.
Reply with JSON only, wrapped in ```json ... ```:
{{"thought": "...", "is_task_related": true or false, "covered_detail_indices": [numbers]}}"""

RESPONDER_SYSTEM = """You are a person who asked an assistant for help: "{task}" (category: {category}).
Answer the assistant's question naturally and briefly, as this person would, inventing plausible specifics.
If the question is unrelated to your request, say so and steer back to the request. Reply in plain text."""


CANNOT_ANSWER = "I cannot answer that. Please ask me about one detail of my request at a time."
"""The responder's reply to a question that covers no remaining detail."""


def asks_detail(question: str, detail: dict[str, Any]) -> bool:
    """Whether `question` is, in canonical form, the detail's inquiry or one of its other wordings (`asks`).

    >>> asks_detail("What's your budget?", {"inquiry": "What is your budget?"})
    True
    >>> asks_detail("budget dates hotel interests?", {"inquiry": "What is your budget?"})
    False
    """
    return parse(question).key in {parse(q).key for q in [detail["inquiry"], *detail.get("asks", [])]}


@USER_RULES.register("intention.evaluate")
def evaluate_question(request: UserRequest) -> str:
    """Covered: the remaining details (numbered from 1) that the question asks, by the grammar."""
    question = request.context["question"]
    covered = [i for i, d in enumerate(request.context["details"], 1) if asks_detail(question, d)]
    return fenced_json({"thought": "asks a hidden detail" if covered else "cannot answer: asks no hidden detail",
                        "is_task_related": bool(covered), "covered_detail_indices": covered})


@USER_RULES.register("intention.respond")
def respond(request: UserRequest) -> str:
    """The descriptions of the details the question covered, or the "cannot answer" reply."""
    covered = request.context["covered_descriptions"]
    if covered:
        return "Good question. " + " ".join(f"{d}." for d in covered)
    return CANNOT_ANSWER


def _format_recent(exchanges: list[tuple[str, str]]) -> str:
    return "\n".join(f"Assistant: {q}\nUser: {a}" for q, a in exchanges) or "(none yet)"


@ENVIRONMENTS.register("intention")
class IntentionGym(JudgedGym):
    """Intent elicitation: rewarded for uncovering hidden details, by importance, one at a time."""

    name = "intention"
    data_file = "intention.json"
    goal = ("A user has a vague request. Before helping, ask clarifying questions, one detail at a time, to "
            "uncover what they really need.")
    verbs = {"action": "ask the user a clarifying question"}
    remaining: list[dict[str, Any]]
    """Missing details not yet covered, in task order."""
    exchanges: list[tuple[str, str]]
    """(question, user reply) pairs so far; the evaluator and the responder see the last `HISTORY`."""

    def __init__(self, max_steps: int = 16, multi_detail_penalty: float = 0.2, step_penalty: float = 0.0,
                 normalize_rewards: bool = True) -> None:
        """Args:
            multi_detail_penalty: subtracted per extra detail one question covers (spec §1.5: 0.2).
            Others: see `JudgedGym`.
        """
        super().__init__(max_steps=max_steps, step_penalty=step_penalty, normalize_rewards=normalize_rewards)
        self.multi_detail_penalty = multi_detail_penalty

    def opening(self, data: dict[str, Any]) -> str:
        self.remaining, self.exchanges = list(data["missing_details"]), []
        return data["task"]

    def _covered(self, value: dict[str, Any]) -> list[int]:
        indices = value["covered_detail_indices"]
        if not isinstance(value["is_task_related"], bool) or not isinstance(indices, list):
            raise JudgeError("is_task_related must be true/false and covered_detail_indices a list")
        if any(not isinstance(i, int) or isinstance(i, bool) or not 1 <= i <= len(self.remaining) for i in indices):
            raise JudgeError(f"covered_detail_indices {indices} not all in 1..{len(self.remaining)}")
        return sorted(set(indices))

    async def act(self, verb: str, content: str) -> StepResult:
        data, recent = self.data, self.exchanges[-HISTORY:]
        details = "\n".join(f"{i}. [{LABELS[d['importance']]}] {d['description']}" for i, d in enumerate(self.remaining, 1))
        system = EVALUATOR_SYSTEM.format(task=data["task"], category=data["category"], details=details,
                                         recent=_format_recent(recent))
        evaluation = await self.ask_json(
            UserRequest(hat="judge", system=system, messages=({"role": "user", "content": content},),
                        rule="intention.evaluate",
                        context={"task": data["task"], "details": self.remaining, "question": content}),
            lambda v: (v["is_task_related"], self._covered(v)))
        related, indices = evaluation if evaluation is not None else (True, [])
        covered = [self.remaining[i - 1] for i in indices]
        conversation = [m for q, a in recent for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]
        withheld = [d["description"] for i, d in enumerate(self.remaining, 1) if i not in indices]
        request = UserRequest(
            hat="user", system=RESPONDER_SYSTEM.format(task=data["task"], category=data["category"]),
            messages=(*conversation, {"role": "user", "content": content}), rule="intention.respond",
            context={"task": data["task"], "question": content, "is_task_related": related,
                     "covered_descriptions": [d["description"] for d in covered], "withheld_descriptions": withheld})
        reply = await self.ask(request)
        self._audit(request, self.user_calls[-1])  # a free-text reply: audited for leaks, not parsed
        self.exchanges.append((content, reply.text))
        reward = 0.0
        if covered:
            top = max(d["importance"] for d in covered)
            reward = max(0.0, IMPORTANCE_REWARD[top] - self.multi_detail_penalty * (len(covered) - 1))
            self.remaining = [d for i, d in enumerate(self.remaining, 1) if i not in indices]
        return StepResult(reply.text, reward=reward, terminated=not self.remaining,
                          info={"covered": [d["description"] for d in covered], "remaining": len(self.remaining)})
