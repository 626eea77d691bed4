"""The errors a user acts on, and the exit code each one ends a command with.

The bottom layer: no imports from the rest of rltrain, so that any module (config, checkpoint, groups, the CLI)
can raise or catch them without pulling in Ray or the actors. `rltrain.guard.run_guarded` turns them into one
line on stderr and the exit code below.
"""

from __future__ import annotations

EXIT_CONFIG = 2
"""A config value, name or path is wrong: nothing was started, or everything was stopped at once."""
EXIT_ROLE = 1
"""A role died, failed or timed out."""
EXIT_STALLED = 3
"""The progress watchdog found no progress within a phase's bound (`RunStalled`)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (the shell's code for SIGINT)."""
EXIT_BUDGET = 4
"""A cost budget (`costs.budgets`) was reached: the run wrote a checkpoint and stopped in order."""
EXIT_PREEMPTED = 143
"""SIGTERM (preemption): the run wrote a checkpoint and stopped in order; `--resume` continues it (128 + SIGTERM, so
that a scheduler which restarts failed jobs restarts it)."""


class ConfigError(ValueError):
    """A config value is missing, unknown, of the wrong type or out of range. The message names the fix."""


class RoleFailed(RuntimeError):
    """An actor died or timed out; the message names the role and what to look at."""


class CallTimedOut(RoleFailed):
    """A remote call the driver waited on did not finish within its bound; `pending` names the roles whose part
    never came back (the driver's watchdog turns this into `RunStalled` after dumping stacks)."""

    def __init__(self, what: str, seconds: float | None, pending: list[str]) -> None:
        self.what, self.seconds, self.pending = what, float(seconds or 0.0), list(pending)
        on = f" (no answer from {', '.join(pending)})" if pending else ""
        super().__init__(f"{what} did not finish within {self.seconds:.0f}s{on}; check the actor logs")


class RunStalled(RoleFailed):
    """No progress within a phase's bound: the watchdog dumped every role's stacks and stopped the run (exit 3)."""

    def __init__(self, phase: str, role: str, seconds: float, stall_dir: str) -> None:
        self.phase, self.role, self.seconds, self.stall_dir = phase, role, seconds, stall_dir
        super().__init__(f"run stalled in {phase} on {role}: no progress for {seconds:.0f}s (stacks in {stall_dir}/)")


class Preempted(Exception):
    """SIGTERM arrived: the run finished its step, wrote a checkpoint and stopped (exit 143). Not a failure."""


class BudgetReached(Exception):
    """A cost budget was reached: the run finished its step, wrote a checkpoint and stopped (exit 4). The message
    names the budget (`costs.budgets`) and how to go on."""
