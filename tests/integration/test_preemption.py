"""Every role may die, the driver too (issue 13, part 4).

A run of 4 steps on the command line: SIGTERM after step 1 (preemption) writes a checkpoint and exits 143 in order;
`--resume` continues it; SIGKILL of that driver (and of every process of its session: a lost node) after its next
checkpoint leaves a run that `--resume` finishes. In the end each step is logged exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.ray
TINY = Path(__file__).parents[2] / "launch" / "configs" / "tiny.yaml"
START_LIMIT_S = 600


def start(tiny_model: Path, out: Path, ray_tmp: str, log: Path, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled", "RAY_TMPDIR": ray_tmp}
    cmd = [sys.executable, "-m", "rltrain.cli", "train", str(TINY), f"model.name={tiny_model}", f"trainer.output_dir={out}",
           "trainer.steps=4", "rollout.engine=transformers", "rollout.num_workers=1", "learner.num_learners=1",
           "env.eval_tasks=0", "trainer.save_final=false", *overrides]
    # a file, not a pipe: an unread pipe that fills up would block the driver itself
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True)


def wait_for(proc: subprocess.Popen, log: Path, done: Callable[[], bool]) -> None:
    deadline = time.time() + START_LIMIT_S
    while not done():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.time() < deadline, log.read_text()[-3000:]
        time.sleep(0.3)


def steps_logged(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    return [json.loads(line)["step"] for line in path.read_text().splitlines()] if path.is_file() else []


def latest(run: Path) -> str | None:
    return (run / "latest").read_text().strip() if (run / "latest").is_file() else None


def kill_session(proc: subprocess.Popen, started: list[psutil.Process]) -> None:
    """SIGKILL the driver's whole session and every process it started (a local Ray cluster outlives its driver)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # the session ended by itself
        pass
    proc.wait(timeout=60)
    for child in started:
        try:
            child.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(started, timeout=30)


def test_sigterm_checkpoints_and_sigkill_resumes(tiny_model: Path, tmp_path: Path) -> None:
    run = tmp_path / "tiny"
    ray_tmp = tempfile.mkdtemp(prefix="rlp-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes

    # 1. preemption: SIGTERM once step 1 is logged -> the step finishes, a checkpoint, exit 143
    log = tmp_path / "first.txt"
    proc = start(tiny_model, tmp_path, ray_tmp, log)
    wait_for(proc, log, lambda: 1 in steps_logged(run))
    started = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == 143, log.read_text()[-3000:]
    stderr = log.read_text()
    stopped_at = steps_logged(run)[-1]
    assert f"rltrain: stopped by SIGTERM after step {stopped_at}, with a checkpoint; continue with: rltrain train" in stderr
    assert latest(run) == f"step_{stopped_at}" and stopped_at < 3  # steps 1-2; SIGTERM lands in step 1 or 2
    deadline = time.time() + 30  # an orderly stop: Ray and every role are gone
    while (alive := [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]) and time.time() < deadline:
        time.sleep(1)
    assert not alive, [p.cmdline()[:3] for p in alive]

    # 2. resume; SIGKILL the driver's whole session once it has written its next checkpoint
    log = tmp_path / "second.txt"
    proc = start(tiny_model, tmp_path, ray_tmp, log, "trainer.checkpoint_every=1", f"--resume={run}")
    # the checkpoint, then its metrics line (a kill between the two loses that line: the checkpoint is the state)
    wait_for(proc, log, lambda: latest(run) == f"step_{stopped_at + 1}" and stopped_at + 1 in steps_logged(run))
    kill_session(proc, psutil.Process(proc.pid).children(recursive=True))
    killed_at = stopped_at + 1

    # 3. resume again: the run finishes from the last complete checkpoint
    log = tmp_path / "third.txt"
    proc = start(tiny_model, tmp_path, ray_tmp, log, "trainer.checkpoint_every=1", "--resume", str(run))
    try:
        assert proc.wait(timeout=START_LIMIT_S) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            kill_session(proc, psutil.Process(proc.pid).children(recursive=True))
    assert f"Resuming from {run / f'step_{killed_at}'}" in log.read_text()
    assert steps_logged(run) == [1, 2, 3, 4]  # each step once: what ran after the last checkpoint was trimmed, then redone
    print(f"\nSIGTERM after step {stopped_at} -> exit 143 with a checkpoint; SIGKILL after step {killed_at}'s "
          f"checkpoint -> resumed to step 4")
