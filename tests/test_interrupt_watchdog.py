"""Ctrl-C can never hang the process: a stuck cleanup is cut off, its stacks printed and its children killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import psutil

HUNG_CLEANUP = textwrap.dedent("""
    import subprocess, sys, time
    from rltrain.interrupt import bounded_interrupt

    def stuck_cleanup():
        while True:
            time.sleep(0.1)

    with bounded_interrupt(timeout_s={timeout}):
        # the grandchild must not hold the test's pipes, or reading them would wait for it
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            print(child.pid, flush=True)  # inside `try`: a Ctrl-C sent as soon as this line is read lands here
            time.sleep(300)
        finally:
            stuck_cleanup()
""")


def _start(timeout_s: float) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", HUNG_CLEANUP.format(timeout=timeout_s)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    return proc, child


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_hung_cleanup_is_killed_after_the_timeout() -> None:
    proc, child = _start(timeout_s=3)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert time.monotonic() - t0 >= 3, "the run's own cleanup gets the whole timeout first"
    assert "did not finish within 3s" in stderr
    assert "stuck_cleanup" in stderr, "the stacks say where the cleanup was stuck"
    assert _gone(child)


def test_a_second_ctrl_c_kills_at_once() -> None:
    proc, child = _start(timeout_s=300)
    proc.send_signal(signal.SIGINT)
    time.sleep(1.0)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and time.monotonic() - t0 < 30
    assert "second Ctrl-C" in stderr
    assert _gone(child)


def test_without_ctrl_c_nothing_changes() -> None:
    from rltrain.interrupt import bounded_interrupt

    before = signal.getsignal(signal.SIGINT)
    with bounded_interrupt(timeout_s=1):
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before
