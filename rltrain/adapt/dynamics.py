"""Dynamics grounding (spec §5.2, §7.5 T2): explore an environment with personas, summarise what each action
changed, consolidate, store per environment, and put the result into the system prompt at task time.

1. Exploration: `ExplorationEnv` wraps a tool environment for one episode. Its system prompt carries a persona
   (`personas_for`) and the (state, action) pairs already recorded, to push novelty; the agent samples at
   temperature 1, for at most `steps` turns, and ends with `###STOP`. Each tool call is recorded with the
   environment's state text before and after (`state_text()`, or the call's observation).
2. Summaries: each recorded call goes to the change summariser, a `UserRequest` with hat "judge" through the LLM
   service (`rltrain.users`), which answers {initial_state, action, environmental_dynamics} in JSON. The rules
   backend answers with `summarise_by_diff` (rule "dynamics_summary"), so the pipeline runs without a model in CI.
3. Consolidation (`consolidate`): drops records that report no change (or whose states are equal) and duplicates.
   The reference used an o3 call for this; a deterministic pass is reproducible and free, and an LLM filter can run
   before it through the same service.
4. Storage (`DynamicsStore`): one JSON file per environment. Use (`dynamics_prompt`): every record as a JSON line
   when they fit the token budget (the reference's behaviour), else the top-k by word overlap with the task.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rltrain.envs.base import StepResult, TextEnv
from rltrain.envs.judge_parsing import JudgeError, ask_strict
from rltrain.tools.base import Tool, ToolResult
from rltrain.types import Task
from rltrain.users import USER_RULES, UserRequest, UserSim

STOP = "###STOP"

DEFAULT_PERSONAS: tuple[tuple[str, str], ...] = (
    ("Careful Beginner", "reads every message, tries one tool at a time with the simplest arguments"),
    ("Power User", "chains tools quickly and tries unusual argument values to find the limits"),
    ("Auditor", "checks what each call changed by looking at the state before and after"),
)
"""Personas of an environment that declares none (a class attribute `personas` of the same shape overrides)."""

SUMMARISER_SYSTEM = (
    "You summarise how an environment changed after one action. You get the state before, the action and the "
    "state after. Answer only with JSON: {\"initial_state\": \"<short description of the state before>\", "
    "\"action\": \"<the action>\", \"environmental_dynamics\": \"<1-2 sentences on what changed, or 'no change'>\"}")

_NO_CHANGE = re.compile(r"^(there (was|is) )?(no (visible |observable |state )?changes?|nothing (changed|happened)|"
                        r"(the )?(environment|state|page|warehouse)( state)? (is |was |remained |remains )?unchanged|"
                        r"(the )?(environment|state|page|warehouse)( state)? did not change)\b", re.I)
"""A record whose dynamics *start* by saying nothing changed ("stock unchanged until commit" is informative)."""


@dataclass(frozen=True)
class Transition:
    """One learned fact of the environment's dynamics (the reference's stored record)."""

    initial_state: str
    action: str
    environmental_dynamics: str

    def line(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass(frozen=True)
class RawStep:
    """One explored call before summarising: the state texts around it."""

    before: str
    action: str
    after: str
    observation: str


def personas_for(env: TextEnv | type[TextEnv]) -> tuple[tuple[str, str], ...]:
    """The environment's persona set (`personas` class attribute), else `DEFAULT_PERSONAS`."""
    return tuple(getattr(env, "personas", None) or DEFAULT_PERSONAS)


def exploration_system(persona: tuple[str, str], seen: Sequence[tuple[str, str]], max_seen: int = 30) -> str:
    """The exploration instructions (spec §5.2): simulate a task this person would do, one call at a time, try what
    is not yet recorded, and write ###STOP once the formats and behaviours are understood."""
    name, description = persona
    lines = [f"You are exploring this environment as a {name}: {description}.",
             "Simulate a task such a person would do. Make one tool call at a time, watch what each call changes, "
             f"and try actions that are not in the list below. When you understand the formats and behaviours, write {STOP}."]
    if seen:
        lines.append("Already recorded (state -> action):")
        lines += [f"- {state} -> {action}" for state, action in list(seen)[-max_seen:]]
    return "\n".join(lines)


class _RecordingTool(Tool):
    """An offered tool that records the state around each call (instances carry the inner tool's schema)."""

    def __init__(self, inner: Tool, owner: ExplorationEnv) -> None:
        self.inner, self.owner = inner, owner
        self.name = inner.name  # type: ignore[misc]
        self.description = inner.description  # type: ignore[misc]
        self.parameters = inner.parameters  # type: ignore[misc]
        self.timeout_s = inner.timeout_s  # type: ignore[misc]
        self.validate_arguments = False  # type: ignore[misc]  # the inner env's reaction to bad arguments is dynamics too

    async def execute(self, arguments: dict[str, Any], episode_state: Any) -> ToolResult:
        env = self.owner.inner
        before = self.owner.state()
        from rltrain.tools.base import ToolError

        try:
            result = await self.inner.execute(arguments, env)
        except ToolError as err:
            result = ToolResult(observation=str(err), error=err.kind)
        action = json.dumps({"name": self.name, "arguments": arguments}, ensure_ascii=False, sort_keys=True)
        self.owner.steps.append(RawStep(before, action, self.owner.state(), result.observation))
        return ToolResult(observation=result.observation, error=result.error)  # exploring never ends on a call


class ExplorationEnv(TextEnv):
    """One exploration episode of `inner` (a tool env): persona prompt, recorded calls, `###STOP` ends it."""

    max_turns = 40  # the reference's step bound

    def __init__(self, inner: TextEnv, persona: tuple[str, str], seen: Sequence[tuple[str, str]]) -> None:
        self.inner, self.persona, self.seen = inner, persona, list(seen)
        self.steps: list[RawStep] = []
        self.stopped = False
        self.early_stops = 0  # ###STOP written before any call (refused)

    def state(self) -> str:
        fn = getattr(self.inner, "state_text", None)
        return fn() if callable(fn) else ""

    def tasks(self, split: Any, count: int, seed: int) -> list[Task]:
        return self.inner.tasks(split, count, seed)

    def reset(self, task: Task) -> tuple[list[dict[str, str]], dict[str, Any]]:
        messages, info = self.inner.reset(task)
        system = exploration_system(self.persona, self.seen)
        if messages and messages[0]["role"] == "system":
            messages = [{"role": "system", "content": messages[0]["content"] + "\n\n" + system}, *messages[1:]]
        else:
            messages = [{"role": "system", "content": system}, *messages]
        return messages, info

    def tools(self) -> list[Tool]:
        return [_RecordingTool(tool, self) for tool in self.inner.tools()]

    def step(self, action: str) -> StepResult:
        if STOP in action and self.steps:
            self.stopped = True
            return StepResult(None, terminated=True)
        if STOP in action:  # small models echo the stop word at once; an exploration without a call records nothing
            self.early_stops += 1
            return StepResult(f"Nothing is recorded yet: make at least one tool call before writing {STOP}.")
        return StepResult(f"Keep exploring with one tool call, or write {STOP}.")


@USER_RULES.register("dynamics_summary")
def summarise_by_diff(request: UserRequest) -> str:
    """The rules backend's change summariser: the state lines that appeared and disappeared, or "no change"."""
    ctx = request.context
    before, after = ctx.get("before", ""), ctx.get("after", "")
    gone = [line for line in before.splitlines() if line not in after.splitlines()]
    new = [line for line in after.splitlines() if line not in before.splitlines()]
    if not gone and not new:
        dynamics = f"no change; the environment answered: {ctx.get('observation', '')[:160]}"
    else:
        dynamics = "; ".join([*(f"removed '{g}'" for g in gone), *(f"added '{n}'" for n in new)])
    return json.dumps({"initial_state": before[:200] or "(empty)", "action": ctx.get("action", ""),
                       "environmental_dynamics": dynamics})


def _summary(data: dict[str, Any]) -> dict[str, Any]:
    """The summariser's JSON, strictly: `environmental_dynamics` must be a non-empty string."""
    dynamics = data["environmental_dynamics"]
    if not isinstance(dynamics, str) or not dynamics.strip():
        raise JudgeError("environmental_dynamics must be a non-empty string")
    return data


async def summarise(user: UserSim, step: RawStep, episode: str, call: int, max_tokens: int = 256,
                    retries: int = 2) -> tuple[Transition | None, int]:
    """One change-summariser call (hat "judge"), parsed strictly and asked again while malformed (issue 17).

    Returns the record (None when every attempt was malformed: the summariser's failure, so no record, never an
    invented one) and the number of malformed replies. A retry samples at temperature 0.7 under another call
    index, since a temperature-0 model would repeat the same reply.
    """
    content = (f"State before:\n{step.before or '(not shown)'}\n\nAction:\n{step.action}\n\n"
               f"Observation:\n{step.observation}\n\nState after:\n{step.after or '(not shown)'}")

    async def ask(retry: int) -> str:
        request = UserRequest(hat="judge", system=SUMMARISER_SYSTEM, messages=({"role": "user", "content": content},),
                              rule="dynamics_summary", context=asdict(step), episode=episode,
                              call=call + 1000 * retry, max_tokens=max_tokens, temperature=0.7 if retry else 0.0)
        return (await user.respond(request)).text

    data, tries, reasons = await ask_strict(ask, _summary, retries)
    if data is None:
        return None, len(reasons)
    record = Transition(str(data.get("initial_state", step.before))[:400], step.action,
                        str(data["environmental_dynamics"])[:600])
    return record, len(reasons)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def consolidate(records: Sequence[Transition | dict[str, Any]]) -> list[Transition]:
    """Drop no-change records and duplicates (same action and same normalised dynamics), keeping first occurrences."""
    out: list[Transition] = []
    seen: set[tuple[str, str]] = set()
    for record in records:
        t = record if isinstance(record, Transition) else Transition(**{k: str(record.get(k, "")) for k in
                                                                        ("initial_state", "action", "environmental_dynamics")})
        dynamics = _norm(t.environmental_dynamics)
        if not dynamics or _NO_CHANGE.match(dynamics):
            continue
        key = (_norm(t.action), dynamics)
        if key in seen:
            continue
        seen.add(key)
        out.append(t)
    return out


class DynamicsStore:
    """Consolidated transitions, one JSON file per environment under `root`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, env: str) -> Path:
        return self.root / f"{env}.json"

    def save(self, env: str, records: Sequence[Transition], summariser: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(env)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"env": env, "summariser": summariser,
                                   "transitions": [asdict(r) for r in records]}, indent=1, ensure_ascii=False))
        tmp.replace(path)
        return path

    def load(self, env: str) -> list[Transition]:
        path = self.path(env)
        if not path.exists():
            raise FileNotFoundError(f"no dynamics for environment {env!r} at {path}; run the exploration first "
                                    f"(`rltrain adapt CONFIG` with adapt.dynamics.explore=true) or fix adapt.dynamics.dir")
        return [Transition(**r) for r in json.loads(path.read_text())["transitions"]]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9_]+", text.lower()))


def dynamics_prompt(records: Sequence[Transition], *, budget_tokens: int, count_tokens: Callable[[str], int],
                    query: str = "", top_k: int = 8) -> str:
    """The system-prompt block: every record when all fit `budget_tokens`, else the `top_k` records with the most
    words in common with `query` (the task), still cut to the budget. Empty when there are no records."""
    if not records:
        return ""
    header = "Here are the list of environmental dynamics of this environment:\n"
    lines = [r.line() for r in records]
    if count_tokens(header + "\n".join(lines)) > budget_tokens:
        q = _words(query)
        ranked = sorted(range(len(records)), key=lambda i: (-len(q & _words(lines[i])), i))[:top_k]
        lines = [lines[i] for i in sorted(ranked)]
        while lines and count_tokens(header + "\n".join(lines)) > budget_tokens:
            lines.pop()
    return header + "\n".join(lines) if lines else ""


def with_dynamics(messages: list[dict[str, str]], block: str) -> list[dict[str, str]]:
    """`messages` with `block` appended to the system prompt (one added when there is none)."""
    if not block:
        return messages
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": messages[0]["content"] + "\n\n" + block}, *messages[1:]]
    return [{"role": "system", "content": block}, *messages]
