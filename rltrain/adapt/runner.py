"""Episodes with adaptation: a session-bound engine (δ), a grounded env (dynamics), exploration, and the 2×2 study.

Agent-loop layer: it plays episodes with `rltrain.agent.run_episode`, on an engine that serves sessions
(`HFEngine`; `VLLMEngine` once it forwards `session=`, see docs/adaptation.md).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rltrain.adapt.dynamics import (
    DynamicsStore,
    ExplorationEnv,
    Transition,
    consolidate,
    dynamics_prompt,
    personas_for,
    summarise,
    with_dynamics,
)
from rltrain.agent import ChatRenderer, run_episode
from rltrain.engines.base import RolloutEngine, Sampling
from rltrain.envs.base import TextEnv
from rltrain.types import Generation, Task, Trajectory
from rltrain.users import UserSim

FORMAT_ERRORS = frozenset({"bad_format", "bad_arguments", "unknown_tool", "IFE", "parse_error"})
"""Tool-record error classes counted as format errors (the formats env's own, the schema check's, the parser's)."""


class SessionEngine(RolloutEngine):
    """An engine bound to one adaptation session: every generate is a prefill of that session (spec §5.1).

    `reset="turn"` zeroes δ before each generate (the BFCL handler's per-turn reset); "episode" keeps δ across the
    episode's turns (reset by the caller at episode start).
    """

    def __init__(self, engine: Any, session: str, reset: str = "episode") -> None:
        if reset not in ("episode", "turn"):
            raise ValueError(f"adapt.reset={reset!r} must be 'episode' or 'turn'")
        self.engine, self.session, self.reset = engine, session, reset
        self.version = engine.version

    async def start(self) -> None:
        await self.engine.reset_session(self.session)

    async def generate(self, prompt_ids: list[int], sampling: Sampling) -> Generation:
        if self.reset == "turn":
            await self.engine.reset_session(self.session)
        return await self.engine.generate(prompt_ids, sampling, session=self.session)

    async def load_weights(self, folder: str, version: int) -> None:
        raise RuntimeError("a session view cannot load weights; load them into the engine it wraps")


class GroundedEnv(TextEnv):
    """`inner` with a dynamics block appended to its system prompt at reset; everything else is the inner env's."""

    def __init__(self, inner: TextEnv, records: Sequence[Transition], budget_tokens: int, count_tokens: Any,
                 top_k: int) -> None:
        self.__dict__["inner"] = inner
        self.__dict__["grounding"] = (list(records), budget_tokens, count_tokens, top_k)

    def __getattr__(self, name: str) -> Any:  # tools call env methods (`apply`, `fmt`) on the env they receive
        return getattr(self.__dict__["inner"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.__dict__["inner"], name, value)

    def tasks(self, split: Any, count: int, seed: int) -> list[Task]:
        return self.inner.tasks(split, count, seed)

    def reset(self, task: Task) -> tuple[list[dict[str, str]], dict[str, Any]]:
        messages, info = self.inner.reset(task)
        records, budget, count, top_k = self.__dict__["grounding"]
        query = " ".join(m["content"] for m in messages if m["role"] == "user")
        return with_dynamics(messages, dynamics_prompt(records, budget_tokens=budget, count_tokens=count,
                                                       query=query, top_k=top_k)), info

    def tools(self) -> list[Any]:
        return self.inner.tools()

    def step(self, action: str) -> Any:
        return self.inner.step(action)

    async def astep(self, action: str) -> Any:
        return await self.inner.astep(action)


@dataclass
class ExploreSettings:
    """Exploration budget (spec §5.2): personas × episodes × steps, temperature 1."""

    episodes_per_persona: int = 1
    steps: int = 6
    temperature: float = 1.0
    max_new_tokens: int = 128
    max_model_len: int = 2048
    seed: int = 0


async def explore(env_factory: Any, engine: RolloutEngine, renderer: ChatRenderer, summariser: UserSim,
                  settings: ExploreSettings) -> tuple[list[Transition], dict[str, int]]:
    """Exploration rollouts, change summaries and consolidation; returns the records and counts along the way."""
    probe = env_factory()
    personas = personas_for(probe)
    tasks = probe.tasks("train", len(personas) * settings.episodes_per_persona, settings.seed)
    sampling = Sampling(max_new_tokens=settings.max_new_tokens, temperature=settings.temperature,
                        stop_token_ids=(renderer.end_of_turn_id,))
    raw: list[Transition] = []
    seen: list[tuple[str, str]] = []
    counts = Counter()
    for n, task in enumerate(tasks):
        persona = personas[n % len(personas)]
        env = ExplorationEnv(env_factory(), persona, seen)
        traj = await run_episode(engine, env, renderer, task, env_name="explore", group_id=n, sampling=sampling,
                                 max_turns=settings.steps, max_model_len=settings.max_model_len)
        counts["episodes"] += 1
        counts["stopped"] += env.stopped
        counts["early_stops_refused"] += env.early_stops
        counts["failed"] += traj.failure is not None
        for k, step in enumerate(env.steps):
            counts["calls"] += 1
            record, malformed = await summarise(summariser, step, f"explore-{n}", k)
            counts["malformed_summaries"] += malformed
            counts["failed_summaries"] += record is None
            if record is not None:
                raw.append(record)
                seen.append((record.initial_state[:80], record.action))
    kept = consolidate(raw)
    counts["summaries"], counts["kept"] = len(raw), len(kept)
    return kept, dict(counts)


@dataclass
class CellResult:
    """One cell of the 2×2 table."""

    delta: bool
    dynamics: bool
    episodes: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def row(self) -> dict[str, Any]:
        n = max(len(self.episodes), 1)
        calls = sum(e["calls"] for e in self.episodes)
        patterns: Counter[str] = Counter()
        for e in self.episodes:
            patterns.update(e["patterns"])
        return {"delta": "on" if self.delta else "off", "dynamics": "on" if self.dynamics else "off",
                "episodes": len(self.episodes),
                "success": sum(e["success"] for e in self.episodes) / n,
                "format_error_rate": sum(e["format_errors"] for e in self.episodes) / calls if calls else 0.0,
                "calls": calls, "failed": sum(e["failure"] is not None for e in self.episodes),
                "patterns": dict(sorted(patterns.items())), "s_per_episode": self.seconds / n}


def episode_record(traj: Trajectory, delta_state: dict[str, Any] | None) -> dict[str, Any]:
    """One episode of a cell: outcome, call errors, SpecTool pattern counts, and δ's state at the end."""
    from rewards.toolcall import label_calls, records_from_trajectory, tool_schemas

    offered = traj.task_data.get("tools") or []
    report = label_calls(records_from_trajectory(traj, list(tool_schemas(offered))), offered) if offered else None
    return {"task_id": traj.task_id, "success": float(sum(traj.turn_rewards) > 0 and traj.failure is None),
            "calls": len(traj.tool_records),
            "format_errors": sum(r.get("error") in FORMAT_ERRORS for r in traj.tool_records),
            "patterns": {k: v for k, v in (report.counts() if report else {}).items() if v},
            "turns": len(traj.turn_boundaries), "finish_reason": traj.finish_reason, "failure": traj.failure,
            "delta_state": delta_state, "messages": traj.messages}


async def run_cell(engine: Any, env_factory: Any, renderer: ChatRenderer, tasks: Sequence[Task], *, delta: bool,
                   records: Sequence[Transition] | None, sampling: Sampling, max_turns: int, max_model_len: int,
                   reset: str, budget_tokens: int, top_k: int, concurrency: int, label: str) -> CellResult:
    """Play `tasks` once each with δ on/off and dynamics on/off (greedy in the study)."""
    cell = CellResult(delta, records is not None)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, task: Task) -> dict[str, Any]:
        async with gate:
            env = env_factory()
            if records is not None:
                env = GroundedEnv(env, records, budget_tokens, lambda t: len(renderer.encode(t)), top_k)
            session = f"{label}/{task.task_id}"
            eng: RolloutEngine = engine
            if delta:
                eng = SessionEngine(engine, session, reset)
                await eng.start()
            traj = await run_episode(eng, env, renderer, task, env_name="adapt", group_id=i, sampling=sampling,
                                     max_turns=max_turns, max_model_len=max_model_len)
            state = await engine.session_summary(session) if delta else None
            if delta:
                await engine.reset_session(session)  # free it: the record keeps its summary
            return episode_record(traj, state)

    t0 = time.perf_counter()
    cell.episodes = list(await asyncio.gather(*(one(i, t) for i, t in enumerate(tasks))))
    cell.seconds = time.perf_counter() - t0
    return cell


def format_table(rows: Sequence[dict[str, Any]], title: str) -> str:
    """The 2×2 table as markdown (success, format-error rate, pattern counts, seconds per episode)."""
    lines = [title, "", "| δ | dynamics | episodes | success | format-error rate | calls | failed | patterns | s/episode |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        patterns = ", ".join(f"{k} {v}" for k, v in r["patterns"].items()) or "none"
        lines.append(f"| {r['delta']} | {r['dynamics']} | {r['episodes']} | {r['success']:.3f} | "
                     f"{r['format_error_rate']:.3f} | {r['calls']} | {r['failed']} | {patterns} | {r['s_per_episode']:.2f} |")
    return "\n".join(lines)


def write_jsonl(path: Any, rows: Sequence[dict[str, Any]]) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


__all__ = ["CellResult", "DynamicsStore", "ExploreSettings", "GroundedEnv", "SessionEngine", "explore",
           "format_table", "run_cell"]
