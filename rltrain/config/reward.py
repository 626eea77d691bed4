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
    max_restarts: int = 3
    """Times Ray restarts a dead reward accountant (for the whole run). The driver then sends it the trajectories
    the dead one held, to score again; an accountant that dies once more stops the run."""

    def __post_init__(self) -> None:
        check(self.max_restarts >= 0, f"reward.max_restarts={self.max_restarts} must be >= 0 (0: a dead accountant stops "
              f"the run)")
        check(self.timeout_s > 0, f"reward.timeout_s={self.timeout_s} must be > 0")
        check(self.num_procs >= 1, f"reward.num_procs={self.num_procs} must be >= 1")
