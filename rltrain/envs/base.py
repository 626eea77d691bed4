"""The text-environment contract, gymnasium-style, and the environment registry.

An environment owns its tasks and its dynamics. The agent loop (`rltrain.agent`) owns the chat template and
tokens: it hands the environment the assistant's text and receives the next observation as text.

To add an environment, subclass `TextEnv` in a module of this package, decorate it with
`@ENVIRONMENTS.register("name")`, and import the module in `rltrain/envs/__init__.py`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

from rltrain.registry import Registry
from rltrain.types import Task
from rltrain.users import UserReply, UserRequest, UserSim, UserSimError

Split = Literal["train", "test"]


@dataclass(frozen=True)
class StepResult:
    """What `TextEnv.step` returns, as gymnasium's 5-tuple with names.

    Attributes:
        observation: the next user/environment message, or None when the episode ends.
        reward: this turn's environment reward (the accountant scores the whole trajectory).
        terminated: the task reached an end state.
        truncated: stopped by a limit (turns, length) rather than by the task.
        info: extra facts for logging and verifiers.
    """

    observation: str | None
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class TextEnv(ABC):
    """A multi-turn text environment. One instance plays one episode at a time."""

    reward_fn: str | None = None
    """Name of the registered reward function that scores this environment's trajectories by default."""
    protocol: str | None = None
    """None: `step` receives the assistant's text. "interact": the agent loop parses the `interact_with_env` tool
    call (`rltrain.protocol`) and `step` receives `[choice] content`; a malformed call ends the episode."""
    needs_user: bool = False
    """True for gyms whose user or judge is simulated (`rltrain.users`): the rollout worker binds a `UserSim`."""
    user: UserSim | None = None
    """The simulated user, bound by the rollout worker with `bind_user` before each episode."""
    episode: str = ""
    user_calls: list[dict[str, Any]]

    def bind_user(self, user: UserSim | None, episode: str) -> None:
        """Attach the simulated user for the next episode; `episode` keys its calls (seeds, replay, records)."""
        self.user, self.episode, self.user_calls = user, episode, []

    async def ask(self, request: UserRequest) -> UserReply:
        """Call the simulated user for this episode and keep the call's record (tokens, latency) in `user_calls`.

        LLM-judged gyms override `astep` and call this. Raises UserSimError when no user is bound or the
        service fails; the agent loop then marks the episode failed (never reward 0).
        """
        if self.user is None:
            raise UserSimError(f"{type(self).__name__} needs a simulated user; set users.backend in the config "
                               f"(rules, vllm or openai)")
        calls = self.__dict__.setdefault("user_calls", [])
        request = dataclasses.replace(request, episode=self.episode, call=len(calls))
        reply = await self.user.respond(request)
        calls.append(reply.record(request))
        return reply

    @abstractmethod
    def tasks(self, split: Split, count: int, seed: int) -> list[Task]:
        """`count` tasks of `split`, deterministic in `seed`. Train and test splits never share a task."""

    @abstractmethod
    def reset(self, task: Task) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """Start an episode; return the opening chat messages (system/user) and info."""

    @abstractmethod
    def step(self, action: str) -> StepResult:
        """Apply the assistant's message; return the observation and reward of this turn."""

    async def astep(self, action: str) -> StepResult:
        """Async step; environments that call services override it. The default runs `step` in a thread."""
        return await asyncio.to_thread(self.step, action)


ENVIRONMENTS: Registry[type[TextEnv]] = Registry("environment")


def make_env(name: str, kwargs: dict[str, Any]) -> TextEnv:
    """Instantiate a registered environment, turning bad kwargs into a clear error."""
    from rltrain.config.loader import ConfigError

    cls = ENVIRONMENTS.get(name)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"env.kwargs for {name!r} are invalid ({err}); see {cls.__module__}.{cls.__name__}") from err
