"""Ctrl-C can never hang the process: a stuck cleanup is cut off, its stacks printed and its children killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

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


IN_PROCESS_ENGINE = textwrap.dedent("""
    import asyncio, sys
    from rltrain import cli
    from rltrain.engines.vllm_engine import VLLMEngine

    async def command(model):  # a command that runs an engine in-process, as router eval, data generate and serve do
        engine = VLLMEngine(model, dtype="bfloat16", max_model_len=256, gpu_memory_utilization=0.1, kv_cache_gib=1,
                            seed=0, threads=1)
        await engine.start()
        print("ready", flush=True)
        await asyncio.sleep(300)

    cli._main = lambda argv: asyncio.run(command(sys.argv[1]))
    sys.exit(cli.main([]))
""")


@pytest.mark.vllm
def test_sigterm_to_a_command_with_an_in_process_engine_leaves_no_engine_process(tiny_model) -> None:
    """SIGTERM (a scheduler, `kill`) once left vLLM's engine-core process orphaned and running (found when a killed
    `rltrain data generate` kept a core busy): `rltrain` now exits through Python, and atexit stops the engine."""
    pytest.importorskip("vllm")
    proc = subprocess.Popen([sys.executable, "-c", IN_PROCESS_ENGINE, str(tiny_model)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:  # vLLM logs to stdout too
            if line.strip() == "ready":
                break
        assert proc.poll() is None, "the engine did not start"
        engine = psutil.Process(proc.pid).children(recursive=True)
        assert engine, "vLLM started no process of its own: the test proves nothing"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
        _, alive = psutil.wait_procs(engine, timeout=30)
        assert not alive, [p.pid for p in alive]
    finally:
        proc.kill()
