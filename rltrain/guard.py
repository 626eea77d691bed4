"""How a command ends: a failure the user acts on becomes one line on stderr and an exit code.

`rltrain train`, `rltrain eval` and the other commands that start roles run their job through `run_guarded`.
The exit codes are `rltrain.errors`' (2 config, 1 role, 3 stalled, 130 Ctrl-C, 143 SIGTERM after a checkpoint).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from rltrain.errors import (
    EXIT_BUDGET,
    EXIT_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_PREEMPTED,
    EXIT_ROLE,
    EXIT_STALLED,
    BudgetReached,
    ConfigError,
    Preempted,
    RoleFailed,
    RunStalled,
)
from rltrain.interrupt import bounded_interrupt
from rltrain.models import ModelNotFoundError

T = TypeVar("T")


def run_guarded(job: Callable[[], T], what: str) -> tuple[int, T | None]:
    """Run a job; the failures a user acts on become one line on stderr and an exit code."""
    try:
        with bounded_interrupt():
            return 0, job()
    except (ConfigError, ModelNotFoundError) as err:
        print(f"rltrain: config error: {err}", file=sys.stderr)
        return EXIT_CONFIG, None
    except RunStalled as err:
        print(f"rltrain: {err}", file=sys.stderr)
        return EXIT_STALLED, None
    except RoleFailed as err:
        print(f"rltrain: {what} stopped: {err}", file=sys.stderr)
        return EXIT_ROLE, None
    except BudgetReached as stop:
        print(f"rltrain: {stop}", file=sys.stderr)
        return EXIT_BUDGET, None
    except Preempted as stop:
        print(f"rltrain: {stop}", file=sys.stderr)
        return EXIT_PREEMPTED, None
    except KeyboardInterrupt:
        print("rltrain: interrupted; all actors were stopped", file=sys.stderr)
        return EXIT_INTERRUPTED, None
