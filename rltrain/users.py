"""The simulated-user contract: what environments ask, what the user service answers.

Environments never talk to a model directly. An LLM-judged gym builds a `UserRequest` (which hat the
simulator wears, its instructions and persona, the conversation so far) and awaits `TextEnv.ask`, which goes
through whatever `UserSim` the rollout worker bound to the environment: the Ray user service
(`actors/user.py`) in training, or an in-process stand-in in unit tests.

One service for every model that is not the policy (spec §1.4: "the same endpoint for every gym"; issue 14). The
request's `hat` is the caller's role, and its cost-ledger role:
- `user`: role-plays the person the agent talks to (answers questions, reveals preferences, argues back);
- `judge`: grades an agent action and returns JSON (yes/no, rubric scores, question type);
- `pool`: a routed model of the router's pool (`UserRequest.model` names it, `users.pool`);
- `proposer`, `reviewer`: data generation; `summariser`: the adaptation issue's summaries.
`UserRequest.model` picks one of the configured pool models (`users.pool[*].name`); None is the service's own
model (`users.model`).

The `rules` backend answers with a registered Python function instead of a model (`USER_RULES`), so the
deterministic parts of a gym run without any LLM: that is how gyms are tested and how CI runs them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from rltrain.registry import Registry

Hat = Literal["user", "judge", "pool", "proposer", "reviewer", "summariser"]


@dataclass(frozen=True)
class UserRequest:
    """One call to the simulated user.

    Attributes:
        hat: "user" (role-play the person), "judge" (grade; answer in JSON), or the role of another non-policy call
            ("pool", "proposer", "reviewer", "summariser").
        system: instructions for the simulator: persona, hidden facts, output format.
        messages: the conversation as the simulator sees it, chat format (the agent's words are role "user").
        rule: the `USER_RULES` entry that answers this request on the rules backend (and in replay checks).
        context: structured facts a rule needs (the hidden answer, the rubric, ...); never shown to the policy.
        episode: stable id of the episode ("<task_id>#<sample>"), for per-episode seeds, replay and records.
        call: index of this call within the episode (0, 1, ...).
        max_tokens: reply budget.
        temperature: 0.0 as in the papers (spec §1.4); the per-episode seed makes >0 reproducible.
        model: a pool model's name (`users.pool[*].name`), or None for the service's own model.
    """

    hat: Hat
    system: str
    messages: tuple[dict[str, str], ...]
    rule: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    episode: str = ""
    call: int = 0
    max_tokens: int = 256
    temperature: float = 0.0
    model: str | None = None

    @property
    def key(self) -> str:
        """Identity of this call within a run: what replay files and records are keyed by."""
        return f"{self.episode}/{self.call}"


@dataclass(frozen=True)
class UserReply:
    """What the user service returns, with its cost record.

    Attributes:
        text: the simulator's reply.
        prompt_tokens, completion_tokens: tokens the backend read and wrote (0 for rules and replay).
        latency_s: seconds from request to reply, retries included.
        backend: "rules", "vllm:<model>", "openai:<model>", "replay" or "cache".
        attempts: tries it took (1 when the first succeeded).
        model: the model that answered (the pool model's name, or the service's model); "" for rules and replay.
        estimated: the backend reported no token usage, so the counts are estimates (tokenizer or 4 characters/token).
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    backend: str = ""
    attempts: int = 1
    model: str = ""
    estimated: bool = False

    def record(self, request: UserRequest) -> dict[str, Any]:
        """The token/latency record kept on the trajectory (`Trajectory.user_calls`), priced by the cost ledger
        (`rltrain.costs.record_from_call`: role = hat, model, tokens, success)."""
        return {"key": request.key, "hat": request.hat, "rule": request.rule, "backend": self.backend,
                "role": request.hat, "model": self.model or request.model or "", "success": True,
                "estimated": self.estimated, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "latency_s": round(self.latency_s, 6),
                "attempts": self.attempts, "text": self.text}


class UserSim(Protocol):
    """Anything that answers user requests: the Ray service client, or a stand-in in tests."""

    async def respond(self, request: UserRequest) -> UserReply: ...


class UserSimError(RuntimeError):
    """The simulated user could not answer (dead actors, timeouts after retries, bad endpoint).

    An infrastructure failure: the episode is marked failed, never scored 0.
    """


UserRule = Callable[[UserRequest], str]
USER_RULES: Registry[UserRule] = Registry("user rule")
"""Deterministic responders for the rules backend, registered by the gyms that define them."""


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_json_reply(text: str) -> dict[str, Any] | None:
    """The JSON object in a judge reply (```json fences optional, as in the UserRL gyms); None if there is none.

    >>> parse_json_reply('Sure. ```json\\n{"answer": "Yes"}\\n```')
    {'answer': 'Yes'}
    >>> parse_json_reply('{"score": 1} trailing words')
    {'score': 1}
    >>> parse_json_reply("no json here") is None
    True
    """
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        candidates.append(text[start:end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate.strip())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def user_metrics(trajectories: Iterable[Any]) -> dict[str, float]:
    """Per-step metrics of the simulated-user calls recorded on trajectories (`user_calls`); empty without calls.

    `users/calls` and `users/tokens` are totals over the step, `users/latency_s` the mean per call,
    `users/cache_rate` the share answered from the service's cache, `users/retried_rate` the share that needed
    more than one attempt.
    """
    calls = [call for t in trajectories for call in getattr(t, "user_calls", None) or []]
    if not calls:
        return {}
    n = len(calls)
    return {
        "users/calls": float(n),
        "users/tokens": float(sum(c.get("prompt_tokens", 0) + c.get("completion_tokens", 0) for c in calls)),
        "users/latency_s": sum(c.get("latency_s", 0.0) for c in calls) / n,
        "users/cache_rate": sum(c.get("backend") == "cache" for c in calls) / n,
        "users/retried_rate": sum(c.get("attempts", 1) > 1 for c in calls) / n,
    }
