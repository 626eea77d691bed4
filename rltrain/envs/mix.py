"""A mixture of gyms as one environment: UserRL trains one policy on several gyms at once (spec §1.6).

`env.name: mix` with `env.kwargs.gyms: {telepathy: {weight: 1}, turtle: {weight: 2, kwargs: {max_steps: 8}}}`.
Each step's tasks are drawn from the gyms in proportion to their weights (largest remainder, deterministic
in the seed); a task remembers its gym in `task.data["gym"]`, and each episode is played by a fresh instance of
that gym, so trajectories carry the gym's own name (`Trajectory.env`) and per-gym scores can be computed.
The gyms must share a protocol and a reward function: one accountant scores every trajectory. The mix offers the
playing gym's tools, and its turn limit (`max_turns`) is the largest of its gyms' (each stops at its own steps).
"""

from __future__ import annotations

import random
from typing import Any

from rltrain.envs.base import ENVIRONMENTS, Split, StepResult, TextEnv, make_env
from rltrain.tools.base import Tool
from rltrain.types import Task
from rltrain.users import UserReply, UserRequest


@ENVIRONMENTS.register("mix")
class MixEnv(TextEnv):
    """Several registered gyms behind one environment."""

    def __init__(self, gyms: dict[str, dict[str, Any]]) -> None:
        if not gyms:
            raise ValueError("mix needs at least one gym, e.g. gyms: {telepathy: {weight: 1}, turtle: {weight: 1}}")
        self.specs: dict[str, tuple[float, dict[str, Any]]] = {}
        for name, spec in gyms.items():
            if name == "mix" or name not in ENVIRONMENTS:
                raise ValueError(f"gym {name!r} is not a registered environment; choose from {', '.join(ENVIRONMENTS)}")
            unknown = set(spec or {}) - {"weight", "kwargs"}
            if unknown:
                raise ValueError(f"gyms.{name} has unknown keys {sorted(unknown)}; use weight and kwargs")
            weight = float((spec or {}).get("weight", 1.0))
            if weight <= 0:
                raise ValueError(f"gyms.{name}.weight={weight} must be > 0")
            self.specs[name] = (weight, dict((spec or {}).get("kwargs", {})))
        self.gyms = {name: make_env(name, kwargs) for name, (_, kwargs) in self.specs.items()}
        for attr in ("protocol", "reward_fn"):
            values = {name: getattr(gym, attr) for name, gym in self.gyms.items()}
            if len(set(values.values())) > 1:
                raise ValueError(f"the gyms of a mix must share one {attr}; got {values}")
        first = next(iter(self.gyms.values()))
        self.protocol, self.reward_fn = first.protocol, first.reward_fn
        self.needs_user = any(gym.needs_user for gym in self.gyms.values())
        self.max_turns = max(int(gym.max_turns) for gym in self.gyms.values())  # each gym still stops at its own limit
        self.active: TextEnv | None = None
        self.active_name = ""

    def counts(self, count: int) -> dict[str, int]:
        """Tasks per gym for `count` tasks: proportional to the weights, remainders to the largest fractions.

        >>> MixEnv({"function_gym": {"weight": 1}, "telepathy": {"weight": 3}}).counts(6)
        {'function_gym': 2, 'telepathy': 4}
        >>> MixEnv({"function_gym": {}, "telepathy": {}, "turtle": {}}).counts(4)
        {'function_gym': 2, 'telepathy': 1, 'turtle': 1}
        """
        total = sum(w for w, _ in self.specs.values())
        exact = {name: count * w / total for name, (w, _) in self.specs.items()}
        out = {name: int(x) for name, x in exact.items()}
        for name in sorted(exact, key=lambda n: out[n] - exact[n])[: count - sum(out.values())]:
            out[name] += 1
        return out

    def tasks(self, split: Split, count: int, seed: int) -> list[Task]:
        tasks = [Task(f"{name}/{t.task_id}", {**t.data, "gym": name})
                 for name, n in self.counts(count).items() if n for t in self.gyms[name].tasks(split, n, seed)]
        random.Random(f"mix-{split}-{seed}").shuffle(tasks)  # a step's groups come from mixed gyms, in a seeded order
        return tasks

    def reset(self, task: Task) -> tuple[list[dict[str, str]], dict[str, Any]]:
        name = task.data["gym"]
        self.active, self.active_name = make_env(name, self.specs[name][1]), name
        self.unoffered_tool, self.malformed_call = self.active.unoffered_tool, self.active.malformed_call
        self.active.bind_user(self.user, self.episode)
        inner = Task(task.task_id.split("/", 1)[1], {k: v for k, v in task.data.items() if k != "gym"})
        return self.active.reset(inner)

    def tools(self) -> list[Tool]:
        assert self.active is not None, "reset() first"
        return self.active.tools()

    @property
    def max_steps(self) -> int | None:  # the playing gym's step limit, for the agent loop's step count
        return getattr(self.active, "max_steps", None)

    def step(self, action: str) -> StepResult:
        assert self.active is not None, "reset() first"
        return self.active.step(action)

    async def astep(self, action: str) -> StepResult:
        assert self.active is not None, "reset() first"
        return await self.active.astep(action)

    async def ask(self, request: UserRequest) -> UserReply:
        assert self.active is not None, "reset() first"
        return await self.active.ask(request)

    @property
    def user_calls(self) -> list[dict[str, Any]]:  # the playing gym keeps the records
        return self.active.user_calls if self.active is not None else []

    @user_calls.setter
    def user_calls(self, value: list[dict[str, Any]]) -> None:
        if self.active is not None:
            self.active.user_calls = value
