"""Which environment the policy plays, and how tasks are drawn."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rltrain.config.loader import check


@dataclass(frozen=True)
class EnvConfig:
    name: str = "arithmetic"
    """Registered environment name (see `rltrain.envs.ENVIRONMENTS`)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the environment's constructor (its reward constants, task ranges, ...)."""
    max_turns: int = 1
    """Most assistant turns per episode; the episode is truncated after this many."""
    eval_tasks: int = 100
    """Held-out tasks evaluated greedily before and after training (0 disables evaluation)."""
    echo_reward: bool = False
    """Append "Reward: x" to each environment reply, as UserRL does (the policy can then condition on it)."""
    plain_text_as_action: bool = False
    """In `interact` gyms, treat a message with no tool call and no tag as `[action] <message>` (talking to the user,
    as in tau-bench) instead of a format error that ends the episode (UserRL's rule, the default). For small models
    not yet trained on the tool protocol."""

    def __post_init__(self) -> None:
        check(self.max_turns >= 1, f"env.max_turns={self.max_turns} must be >= 1")
        check(self.eval_tasks >= 0, f"env.eval_tasks={self.eval_tasks} must be >= 0 (0 disables evaluation)")
