"""The progress watchdog: how long the driver waits on each phase before it calls the run stalled."""

from __future__ import annotations

from dataclasses import dataclass

from rltrain.config.loader import check


@dataclass(frozen=True)
class WatchdogConfig:
    start_s: float = 600.0
    """Seconds a role may take to start (engine load, DeepSpeed init, process-group rendezvous)."""
    rollout_s: float = 3600.0
    """Seconds a step's rollout (or an evaluation's) may go without any rollout worker finishing its share. Must
    exceed one environment step's bound (`env.step_timeout_s`), which exceeds the simulated users' worst case."""
    reward_s: float = 600.0
    """Seconds the reward accountant may take to score one step's trajectories. Must exceed `reward.timeout_s`
    (one verifier call): a verifier that hangs is cut off and its trajectory marked failed long before."""
    update_s: float = 3600.0
    """Seconds the learner ranks may take for one step's update. Must exceed `learner.collective_timeout_s`, so
    that a rank blocked in a collective errors out by itself first and is named."""
    sync_s: float = 600.0
    """Seconds a weight sync (export on learner rank 0, load on every rollout worker) may take."""
    checkpoint_s: float = 1800.0
    """Seconds a checkpoint save or load may take."""
    dump_stacks: bool = True
    """On a stall, write the Python stacks of every role's process (and the vLLM engine processes) into
    `<run>/stall/` with py-spy (faulthandler on SIGUSR1 where ptrace is denied) before stopping."""

    def __post_init__(self) -> None:
        for key in ("start_s", "rollout_s", "reward_s", "update_s", "sync_s", "checkpoint_s"):
            value = getattr(self, key)
            check(value > 0, f"watchdog.{key}={value:g} must be > 0 (seconds)")
