"""The reward accountant: which verifier scores trajectories, and its limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rltrain.config.loader import check


@dataclass(frozen=True)
class RewardConfig:
    fn: str | None = None
    """Registered reward function (see `rewards.REWARD_FNS`); default: the environment's own verifier."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the reward function (its constants)."""
    timeout_s: float = 30.0
    """Seconds one reward call may take before the trajectory is marked failed (not scored 0)."""
    num_procs: int = 1
    """Processes in the accountant's verifier pool."""

    def __post_init__(self) -> None:
        check(self.timeout_s > 0, f"reward.timeout_s={self.timeout_s} must be > 0")
        check(self.num_procs >= 1, f"reward.num_procs={self.num_procs} must be >= 1")
