"""Ctrl-C that always ends: the run's own cleanup first, then a bounded fallback that kills what it started.

The first SIGINT raises KeyboardInterrupt as usual, so `train()`'s `finally` stops every role and Ray in order.
It also arms a watchdog: if the process is still alive `RLTRAIN_SHUTDOWN_TIMEOUT_S` seconds later (default 120),
it writes every thread's Python stack to stderr (what the cleanup was stuck on, for a bug report), kills every
process this one started (a local Ray cluster: GCS, raylet, actors, engine processes) and exits 130. A second
Ctrl-C does the same at once. A joined cluster (`ray.address`) is not a child of this process and is untouched.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from rltrain.errors import EXIT_INTERRUPTED

EXIT_CODE = EXIT_INTERRUPTED
DEFAULT_TIMEOUT_S = 120.0


def shutdown_timeout_s() -> float:
    raw = os.environ.get("RLTRAIN_SHUTDOWN_TIMEOUT_S", "")
    try:
        return float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        print(f"rltrain: RLTRAIN_SHUTDOWN_TIMEOUT_S={raw!r} is not a number of seconds; using {DEFAULT_TIMEOUT_S:g}",
              file=sys.stderr)
        return DEFAULT_TIMEOUT_S


def kill_children_and_exit(reason: str) -> None:
    """Dump all threads' stacks, SIGKILL every descendant process, exit 130 without running more Python cleanup."""
    import psutil

    print(f"rltrain: {reason}; killing the processes this run started. Stacks of the stuck process follow.",
          file=sys.stderr, flush=True)
    faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        children = []
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(children, timeout=10)
    sys.stderr.flush()
    os._exit(EXIT_CODE)


class _Watchdog:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.armed_at: float | None = None

    def on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.armed_at is not None:
            kill_children_and_exit("second Ctrl-C during shutdown")
        self.armed_at = time.monotonic()
        threading.Thread(target=self._expire, name="rltrain-shutdown-watchdog", daemon=True).start()
        print(f"rltrain: Ctrl-C: stopping every role (at most {self.timeout_s:.0f}s; Ctrl-C again to kill at once)",
              file=sys.stderr, flush=True)
        raise KeyboardInterrupt

    def _expire(self) -> None:
        time.sleep(self.timeout_s)
        kill_children_and_exit(f"shutdown did not finish within {self.timeout_s:.0f}s of Ctrl-C "
                               f"(RLTRAIN_SHUTDOWN_TIMEOUT_S)")


@contextmanager
def bounded_interrupt(timeout_s: float | None = None) -> Iterator[None]:
    """Within this block (main thread only), Ctrl-C cleans up normally but can no longer hang the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    watchdog = _Watchdog(shutdown_timeout_s() if timeout_s is None else timeout_s)
    previous = signal.signal(signal.SIGINT, watchdog.on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
