"""What the four LLM-judged UserRL gyms share (spec §1.4, §1.5): task files, verbs, judge calls, reward clipping.

A judged gym (`TelepathyGym`, `TurtleGym`, `PersuadeGym`, `IntentionGym`) subclasses `JudgedGym` and writes
only its own rules: `opening(task)` (the first user message) and `act(verb, content)` (one `[action]`,
`[search]` or `[answer]` turn). This class owns the rest:

- tasks: `rltrain/envs/data/<data_file>` holds `{"train": [...], "test": [...]}`; `tasks(split, count, seed)`
  shuffles a split with `random.Random(f"{name}-{split}-{seed}")` and cycles through it when `count` exceeds
  the split, suffixing `~<pass>` to the task ids of later passes so that episode keys (`<task_id>#<sample>`)
  stay unique;
- the verbs (spec §1.3): `[finish]` ends the episode with reward 0; a verb the gym does not offer returns
  a hint with reward 0; every step counts towards `max_steps` and the step that reaches it is truncated;
- the turn reward: `reward - step_penalty`, clipped to [0, 1] when `normalize_rewards` (spec §1.4);
- `ask_json`: one simulated-user call whose reply must be a JSON object of a given shape, parsed strictly.

Failure policy (issue 17). Two different things can go wrong with the simulated user:

- Malformed output (no JSON, a missing field, a value outside the allowed set) is the simulator's mistake,
  never the agent's. `ask_json` asks again (`judge_retries` times, `rltrain.envs.judging.ask_strict`), showing
  the simulator its reply and what was wrong with it. Every malformed reply is marked on its call record
  (`user_calls[i]["malformed"]`, the per-episode `user/invalid_reply_rate`), named in that step's
  `StepResult.info["judge_error"]` and counted in `judge_errors`. When every attempt is malformed:
  `on_malformed="fail"` (the default) raises `MalformedReplyError`, a `UserSimError`; `"fallback"` is the papers'
  rule (UserRL spec §1.4, UserBench's canned apology): the gym's fallback feedback with reward 0, and the
  episode goes on (TravelGym's parity mode).
- `UserSimError` (no user bound, service down, retries exhausted, a malformed simulator) propagates out of
  `astep`: the agent loop marks the episode failed, never reward 0 (spec §1.11, "Env exceptions ... silent
  negative signal").

Every accepted reply goes through the registered `CALL_AUDITS` (the ground-truth audit of `rltrain.envs.audit`, no
model call); their flags go on the call record (`user_calls[i]["audit"]`), where `audit_episodes` finds them after
the episode.

`step` runs `astep` with `asyncio.run`, for scripts and tests outside an event loop; the agent loop awaits
`astep`. The small text helpers the rules responders share (`normalize`, `mentions`, `fenced_json`) live here.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import json
import random
import re
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from rltrain.envs.base import Split, StepResult, TextEnv
from rltrain.envs.judge_parsing import JudgeError, MalformedReplyError, ask_strict, parse_strict
from rltrain.registry import Registry
from rltrain.types import Task
from rltrain.users import UserRequest

__all__ = ["CALL_AUDITS", "JudgeError", "JudgedGym", "MalformedReplyError", "fenced_json", "mentions", "normalize", "one_of"]

T = TypeVar("T")
DATA_DIR = Path(__file__).parent / "data"

CallAudit = Callable[[UserRequest, Mapping[str, Any], Mapping[str, Any]], list[dict[str, str]]]
CALL_AUDITS: Registry[CallAudit] = Registry("call audit")
"""Checks of every reply a judged gym accepts: (request, call record, task data) -> flags ({kind, detail}) for the
record. `rltrain.envs.audit` registers the ground-truth audit. A registry, not an import: the audit reads the gyms'
own rules (telepathy, intention), which build on this module."""

PROTOCOL_RULES = (
    "Act through the interact_with_env tool (or write one line: [choice] content). Choices:\n"
    "{verbs}\n"
    "[finish] ends the episode. Think step by step before each call."
)
"""The gym's verbs in plain words. The tool's format is rendered by the chat template (`tools=`), not written here."""


def render_data_file(data: dict[str, list[Any]], keys: Iterable[str]) -> str:
    """A shipped task file's text: a JSON object of lists, one row per line (diffs stay readable)."""
    parts = []
    for key in keys:
        rows = ",\n".join(f"    {json.dumps(row)}" for row in data[key])
        parts.append(f'  "{key}": [\n{rows}\n  ]')
    return "{\n" + ",\n".join(parts) + "\n}\n"


def normalize(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces, no leading article: what the rules compare.

    >>> normalize("  The Eiffel-Tower! ")
    'eiffel tower'
    """
    words = re.sub(r"[^a-z0-9]+", " ", text.lower()).split()
    if words and words[0] in ("the", "a", "an"):
        words = words[1:]
    return " ".join(words)


def mentions(text: str, keywords: Iterable[str]) -> list[str]:
    """The keywords that occur in `text` as whole words or word prefixes ("swim" matches "swimming").

    >>> mentions("Does it live in the sea and swim?", ["swim", "fur", "sea"])
    ['swim', 'sea']
    """
    padded = f" {normalize(text)}"
    return [k for k in keywords if normalize(k) and f" {normalize(k)}" in padded]  # "a" normalizes to ""


def fenced_json(value: dict[str, Any]) -> str:
    """A JSON reply in the ```json fence the LLM prompts ask for, so rules and LLM replies parse alike."""
    return f"```json\n{json.dumps(value)}\n```"


TaskSource = Callable[[], Mapping[str, list[dict[str, Any]]]]
TASK_SOURCES: Registry[TaskSource] = Registry("task source")
"""Gyms whose tasks a seeded generator builds at load time (deterministic, so every process sees the same tasks),
by the `data_file` name they would otherwise read: a set at UserRL scale need not ship as megabytes of JSON."""


@functools.cache
def load_tasks(data_file: str) -> dict[str, tuple[dict[str, Any], ...]]:
    """The train and test tasks of one gym: its registered generator (`TASK_SOURCES`), else its JSON file under
    `rltrain/envs/data/` (built once per process)."""
    raw = TASK_SOURCES.get(data_file)() if data_file in TASK_SOURCES else json.loads((DATA_DIR / data_file).read_text())
    return {split: tuple(raw[split]) for split in ("train", "test")}


class JudgedGym(TextEnv):
    """A UserRL gym whose user or judge is simulated; subclasses implement `opening` and `act`."""

    reward_fn = "turn_rewards"
    protocol = "interact"
    needs_user = True

    name: ClassVar[str]
    """The registered name; also seeds task sampling and prefixes the rule names (`<name>.<what>`)."""
    data_file: ClassVar[str]
    """File under `rltrain/envs/data/` with `{"train": [...], "test": [...]}`; each task has a unique "id"."""
    goal: ClassVar[str]
    """What the agent must do, shown first in the system prompt."""
    verbs: ClassVar[dict[str, str]]
    """The verbs this gym offers ("action", "search", "answer") and what each does, for the system prompt."""
    judge_retries: int = 2
    """Asks after a malformed reply before the call counts as the simulator's failure (issue 17)."""
    on_malformed: Literal["fail", "fallback"] = "fail"
    """A reply still malformed after the retries: "fail" raises `MalformedReplyError` (the episode is marked failed);
    "fallback" gives the gym's fallback for that turn with reward 0 (the papers' rule, a parity mode)."""

    def __init__(self, max_steps: int = 16, step_penalty: float = 0.0, normalize_rewards: bool = True) -> None:
        """Args:
            max_steps: steps before truncation (UserRL's env manager sets it to multi_turn.max_turns, 16).
            step_penalty: subtracted from every turn reward (spec §1.4 default 0.0).
            normalize_rewards: clip turn rewards to [0, 1] (spec §1.4: True for these four gyms).
        """
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        self.max_steps, self.step_penalty, self.normalize_rewards = max_steps, step_penalty, normalize_rewards
        self.max_turns = max_steps  # every call is a step, so no episode has more turns than steps
        # Per episode, set by reset.
        self.task: Task | None = None
        self.steps = 0
        self.judge_errors = 0
        self._step_errors: list[str] = []

    # -- tasks and episodes ------------------------------------------------------------------------------------

    def tasks(self, split: Split, count: int, seed: int) -> list[Task]:
        pool = list(load_tasks(self.data_file)[split])
        random.Random(f"{self.name}-{split}-{seed}").shuffle(pool)
        # Deep copies: the pool is cached per process, and a task's data may be mutated downstream.
        return [Task(task_id=pool[i % len(pool)]["id"] + (f"~{i // len(pool)}" if i >= len(pool) else ""),
                     data={**copy.deepcopy(pool[i % len(pool)]), "split": split}) for i in range(count)]

    def reset(self, task: Task) -> tuple[list[dict[str, str]], dict[str, Any]]:
        self.task, self.steps, self.judge_errors = task, 0, 0
        opening = self.opening(task.data)
        verbs = "\n".join(f"- {verb}: {what}" for verb, what in self.verbs.items())
        system = f"{self.goal}\n\n{PROTOCOL_RULES.format(verbs=verbs)}"
        return [{"role": "system", "content": system}, {"role": "user", "content": opening}], {}

    def step(self, action: str) -> StepResult:
        """Synchronous `astep`, for use outside an event loop."""
        return asyncio.run(self.astep(action))

    async def astep(self, action: str) -> StepResult:
        if self.task is None:
            raise RuntimeError(f"{type(self).__name__}.reset(task) must come before step")
        self.steps += 1
        self._step_errors = []
        verb, _, content = action.partition("]")
        verb, content = verb.strip("[ ").lower(), content.strip()
        if verb == "finish":
            return StepResult(None, terminated=True)
        if verb in self.verbs:
            result = await self.act(verb, content)
        else:
            offered = ", ".join(f"[{v}]" for v in self.verbs)
            result = StepResult(f"Format wrong: use {offered} or [finish].")
        reward = result.reward - self.step_penalty
        if self.normalize_rewards:
            reward = min(1.0, max(0.0, reward))
        info = dict(result.info)
        if self._step_errors:
            info["judge_error"] = "; ".join(self._step_errors)
        return dataclasses.replace(result, reward=reward, info=info,
                                   truncated=not result.terminated and self.steps >= self.max_steps)

    @property
    def data(self) -> dict[str, Any]:
        """The current task's data."""
        if self.task is None:
            raise RuntimeError(f"{type(self).__name__}.reset(task) must come before step")
        return self.task.data

    # -- the simulated user ------------------------------------------------------------------------------------

    async def ask_json(self, request: UserRequest, parse: Callable[[dict[str, Any]], T]) -> T | None:
        """Ask the simulated user and parse its JSON reply strictly, asking again while it is malformed.

        `parse` turns the reply's JSON object into what the gym needs and raises `JudgeError` (or KeyError,
        TypeError, ValueError) when the object lacks a field or holds a value off the allowed set. Returns the
        parsed value; None only with `on_malformed="fallback"` once every attempt was malformed (the caller's
        fallback). Raises `MalformedReplyError` (`on_malformed="fail"`) or the service's UserSimError.
        """
        records: list[dict[str, Any]] = []
        texts: list[str] = []

        async def attempt(n: int) -> str:
            reply = await self.ask(request if n == 0 else _corrected(request, texts[-1], parse))
            records.append(self.user_calls[-1])  # `ask` appended it; no other call ran in between (no await)
            texts.append(reply.text)
            return reply.text

        value, tries, reasons = await ask_strict(attempt, parse, self.judge_retries)
        for record, reason in zip(records, reasons):  # the malformed ones are the first len(reasons) attempts
            record["malformed"] = reason
        if reasons:
            self.judge_errors += len(reasons)
            recovered = f" (attempt {tries} parsed)" if value is not None else ""
            self._step_errors.append(f"{request.rule}: {'; '.join(reasons)}{recovered}")
        if value is None:
            if self.on_malformed == "fail":
                raise MalformedReplyError(
                    f"{request.rule}: the simulated {request.hat} sent {tries} malformed replies in a row "
                    f"({'; '.join(reasons)}). The simulator cannot keep to the reply format: use a stronger "
                    f"users.model (docs/users.md), or the papers' fallback (reward 0 for the turn) with "
                    f"env.kwargs.on_malformed=fallback where the gym offers it")
            return None
        self._audit(request, records[-1])
        return value

    def _audit(self, request: UserRequest, record: dict[str, Any]) -> None:
        """Flag an accepted reply that contradicts the task's ground truth or leaks it (`CALL_AUDITS`)."""
        flags = [flag for name in CALL_AUDITS for flag in CALL_AUDITS.get(name)(request, record, self.data)]
        if flags:
            record["audit"] = flags

    # -- what each gym implements ------------------------------------------------------------------------------

    @abstractmethod
    def opening(self, data: dict[str, Any]) -> str:
        """Set up the episode's state for task `data`; return the first user message."""

    @abstractmethod
    async def act(self, verb: str, content: str) -> StepResult:
        """Play one offered verb; return feedback, the raw turn reward and whether the task is over."""


RETRY_NOTE = ("Your reply could not be read: {reason}. Reply again with the JSON object only, exactly in the format "
              "the instructions give.")


def _corrected(request: UserRequest, previous: str, parse: Callable[[dict[str, Any]], Any]) -> UserRequest:
    """The request again, with the malformed reply and what was wrong with it appended: a model at temperature 0
    would only repeat itself, and a cached reply would come back unchanged."""
    try:
        parse_strict(previous, parse)
        reason = "it does not follow the format"  # not reached: ask_strict retries only malformed replies
    except JudgeError as err:
        reason = str(err)
    note = {"role": "user", "content": RETRY_NOTE.format(reason=reason)}
    return dataclasses.replace(request, messages=(*request.messages, {"role": "assistant", "content": previous}, note))


def one_of(value: Any, allowed: Iterable[str], field: str) -> str:
    """`value` matched case-insensitively against `allowed`, returned in its canonical spelling.

    >>> one_of(" yes", ("Yes", "No"), "response")
    'Yes'
    """
    for option in allowed:
        if isinstance(value, str) and value.strip().lower() == option.lower():
            return option
    raise JudgeError(f"{field}={value!r} is not one of {', '.join(allowed)}")
