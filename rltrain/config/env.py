"""Which environment the policy plays, how tasks are drawn, and how its tools are parsed, run and bounded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rltrain.config.loader import ConfigError, check


@dataclass(frozen=True)
class EnvConfig:
    name: str = "arithmetic"
    """Registered environment name (see `rltrain.envs.ENVIRONMENTS`)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the environment's constructor (its reward constants, task ranges, ...)."""
    max_turns: int | None = None
    """Most assistant turns per episode. null (default): the env's own limit (its max_steps; for `mix`, the largest of
    its gyms'). A value above the env's limit is an error (`rltrain.envs.base.resolve_max_turns`)."""
    eval_tasks: int = 100
    """Held-out tasks evaluated greedily before and after training (0 disables evaluation)."""
    echo_reward: bool = False
    """Append "Reward: x" to each environment reply, as UserRL does (the policy can then condition on it)."""
    plain_text_as_action: bool = False
    """In `interact` gyms, treat a message with no tool call and no tag as `[action] <message>` (talking to the user,
    as in tau-bench) instead of a format error that ends the episode (UserRL's rule, the default). For small models
    not yet trained on the tool protocol."""
    tools: tuple[str, ...] = ()
    """Extra tools offered in every episode, besides the env's own: registered names (`rltrain.tools.TOOLS`) or
    `module:Class` paths of `Tool` subclasses, e.g. `[my_tools:Weather]` (docs/tools.md)."""
    tool_parser: str = "auto"
    """How tool calls are read from the policy's messages, named as vLLM's --tool-call-parser: `hermes` (tags only),
    `llama3_json`, `permissive` (tags, bare JSON, ```json fences; Qwen2.5-Coder writes these), or `auto` (from the
    model's chat template: `llama3_json` for Llama-3 templates, else `permissive`). Checked against the registered
    parsers by `rltrain.tools.parsers.check_parser` when the rollout workers start."""
    max_tool_response_tokens: int = 2048
    """Longest tool result in tokens; longer ones are cut and end with a visible "[truncated ...]" marker (as verl's
    max_tool_response_length)."""
    step_timeout_s: float | None = None
    """Seconds one environment step (or a tool that steps the env) may take; a slower one ends the episode as a named
    failure, never reward 0. null: derived from the users config (twice the user service's worst case plus 30 s)
    for gyms with a simulated user, 60 s otherwise. Must exceed users' worst case (`users.timeout_s`, retries,
    backoff)."""
    step_threads: int = 4
    """Threads the rollout worker runs synchronous env steps in (its own, not the default pool)."""

    def __post_init__(self) -> None:
        check(self.max_turns is None or self.max_turns >= 1, f"env.max_turns={self.max_turns} must be >= 1 or null (the env's limit)")
        check(self.eval_tasks >= 0, f"env.eval_tasks={self.eval_tasks} must be >= 0 (0 disables evaluation)")
        check(bool(self.tool_parser), "env.tool_parser must name a parser (auto, hermes, llama3_json or permissive)")
        check(self.max_tool_response_tokens >= 16, f"env.max_tool_response_tokens={self.max_tool_response_tokens} must be >= 16")
        check(self.step_timeout_s is None or self.step_timeout_s > 0, f"env.step_timeout_s={self.step_timeout_s} must be > 0 or null")
        check(self.step_threads >= 1, f"env.step_threads={self.step_threads} must be >= 1")


NO_USER_STEP_TIMEOUT_S = 60.0
"""Default bound on one step of an env without a simulated user."""
USER_CALLS_PER_STEP = 2
"""Simulated-user calls one judged step may make one after the other (TravelGym: the judge, then the reply)."""


def step_timeout(env: EnvConfig, users: Any | None, needs_user: bool) -> float:
    """The bound on one env step: `env.step_timeout_s`, or its default from the users config.

    A gym step may wait on the user service, whose own worst case is `users.worst_case_s` (74 s with today's
    defaults: 4 attempts of 15 s plus 2 + 4 + 8 s of backoff). A bound below that would fail episodes the service
    still answers, so it is rejected. `users` is a `UsersConfig` (None when no user is configured).
    """
    worst = float(users.worst_case_s) if needs_user and users is not None else 0.0
    if env.step_timeout_s is None:
        return USER_CALLS_PER_STEP * worst + 30.0 if worst else NO_USER_STEP_TIMEOUT_S
    if env.step_timeout_s <= worst:
        raise ConfigError(f"env.step_timeout_s={env.step_timeout_s:g} is shorter than the user service's worst case of "
                          f"{worst:g} s (users.timeout_s x (users.retries + 1) + backoff); raise env.step_timeout_s above "
                          f"{worst:g} (e.g. {USER_CALLS_PER_STEP * worst + 30:g}) or leave it null")
    return float(env.step_timeout_s)
