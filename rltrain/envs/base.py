"""The text-environment contract, gymnasium-style, and the environment registry.

An environment owns its tasks and its dynamics. The agent loop (`rltrain.agent`) owns the chat template and
tokens: it hands the environment the assistant's text and receives the next observation as text.

To add an environment, subclass `TextEnv` in a module of this package, decorate it with
`@ENVIRONMENTS.register("name")`, and import the module in `rltrain/envs/__init__.py`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from rltrain.registry import Registry
from rltrain.tools.base import Tool
from rltrain.types import Task
from rltrain.users import UserReply, UserRequest, UserSim, UserSimError

Split = Literal["train", "test"]
T = TypeVar("T")


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
    """None: `step` receives the assistant's text. "interact": a UserRL gym; it offers the `interact_with_env` tool
    (`rltrain.tools.interact`), whose calls reach `step` as `[choice] content`, and a plain-text message must be a
    tagged `[verb] ...` line (or `env.plain_text_as_action`); a malformed call ends the episode."""
    unoffered_tool: Literal["error", "end"] = "error"
    """A call to a tool this episode did not offer: "error" returns the error to the agent as that call's observation
    (error class "unknown_tool"); "end" ends the episode with finish_reason "unoffered_tool" (xRouter's rule)."""
    malformed_call: Literal["error", "end"] = "end"
    """A message meant as a tool call that cannot be parsed (IFE, `rltrain.tools.parsers`) and holds no valid call:
    "end" ends the episode with `format_error` set (UserRL, spec §1.3); "error" returns the parse error to the agent
    as the observation and the episode goes on."""
    max_turns: int = 16
    """Most assistant turns per episode when `env.max_turns` is not set (`resolve_max_turns`); a config above it
    is an error."""
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

    def tools(self) -> list[Tool]:
        """The tools this episode offers (called after `reset`); rendered through the chat template's `tools=`.

        Default: `interact_with_env` for UserRL gyms (`protocol == "interact"`), else none (`step` receives the
        assistant's text). A tool's `execute` receives this env instance as `episode_state`. A plain-text message
        (no call) still goes to `step`/`astep`.
        """
        if self.protocol == "interact":
            from rltrain.tools.interact import InteractTool

            return [InteractTool()]
        return []

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
        """Async step; environments that call services override it. The default runs `step` on `STEP_RUNNER`'s
        bounded threads (never the loop's default pool, which a hung step would drain)."""
        return await STEP_RUNNER.run(self.step, action)


class StepRunnerExhausted(RuntimeError):
    """Too many synchronous env steps are hung in threads that cannot be killed; the worker refuses more."""


class StepRunner:
    """Runs synchronous env steps in threads of its own: at most `threads` at once, each step in a fresh daemon thread.

    `asyncio.wait_for` can cancel the awaiting coroutine but not a thread. A step abandoned that way keeps its
    thread, but gives its slot back, so a hung environment cannot starve the worker: new episodes still get
    threads. Abandoned threads are counted; past `max_hung` still running, further sync steps fail at once with
    `StepRunnerExhausted` (a named episode failure) instead of piling up threads.
    """

    def __init__(self, threads: int = 4, max_hung: int = 64) -> None:
        self.threads, self.max_hung = threads, max_hung
        self.hung = 0
        self._lock = threading.Lock()
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:  # one semaphore per event loop (tests run several loops)
            self._slots, self._loop = asyncio.Semaphore(self.threads), loop
        return self._slots

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            if self.hung >= self.max_hung:
                raise StepRunnerExhausted(
                    f"{self.hung} synchronous env steps are still hung after their timeout; fix the environment's step "
                    f"(or raise env.step_timeout_s if it is merely slow)")
        loop = asyncio.get_running_loop()
        async with self._semaphore():
            done: asyncio.Future[T] = loop.create_future()
            abandoned, finished = threading.Event(), threading.Event()

            def settle(value: Any, error: BaseException | None) -> None:
                if not done.done():
                    done.set_exception(error) if error is not None else done.set_result(value)

            def work() -> None:
                try:
                    value, error = fn(*args), None
                except BaseException as err:  # handed to the awaiting coroutine, raised there
                    value, error = None, err
                with self._lock:
                    if abandoned.is_set():
                        self.hung -= 1
                        return
                    finished.set()
                if not loop.is_closed():
                    loop.call_soon_threadsafe(settle, value, error)

            threading.Thread(target=work, name="rltrain-env-step", daemon=True).start()
            try:
                return await done
            except asyncio.CancelledError:  # timed out (or the episode was cancelled): the thread runs on, unowned
                with self._lock:
                    if not finished.is_set():
                        abandoned.set()
                        self.hung += 1
                raise

    def configure(self, threads: int, max_hung: int) -> None:
        """Resize (the rollout worker calls it once, from `env.step_threads`)."""
        if threads < 1 or max_hung < 1:
            raise ValueError(f"step runner needs threads >= 1 and max_hung >= 1, got {threads} and {max_hung}")
        self.threads, self.max_hung, self._slots = threads, max_hung, None


STEP_RUNNER = StepRunner()
"""The rollout worker's runner for synchronous env steps (`TextEnv.astep`); resized with `configure(threads, max_hung)`."""


def resolve_max_turns(env: TextEnv, configured: int | None) -> int:
    """The episode turn limit: `env.max_turns` from the config, or the env's own limit when it is not set.

    For a `mix`, the env's limit is its gyms' largest (each gym still truncates at its own steps). Raises ConfigError
    when the config asks for more turns than the env allows. Preflight calls this before anything starts.
    """
    from rltrain.config.loader import ConfigError

    limit = int(env.max_turns)
    if configured is None:
        return limit
    if configured < 1:
        raise ConfigError(f"env.max_turns={configured} must be >= 1 (or unset: the env's limit, {limit})")
    if configured > limit:
        raise ConfigError(f"env.max_turns={configured} exceeds {type(env).__name__}'s limit of {limit} turns (its max_steps "
                          f"or max_turns); lower env.max_turns, raise the env's max_steps in env.kwargs, or leave "
                          f"env.max_turns unset to use {limit}")
    return configured


ENVIRONMENTS: Registry[type[TextEnv]] = Registry("environment")


def make_env(name: str, kwargs: dict[str, Any]) -> TextEnv:
    """Instantiate a registered environment, turning bad kwargs into a clear error."""
    from rltrain.config.loader import ConfigError

    cls = ENVIRONMENTS.get(name)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"env.kwargs for {name!r} are invalid ({err}); see {cls.__module__}.{cls.__name__}") from err
