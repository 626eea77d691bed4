"""Ctrl-C stops a run cleanly: exit 130, and every process it started (Ray, actors, engines) is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.ray
TINY = Path(__file__).parents[2] / "launch" / "configs" / "tiny.yaml"


@pytest.mark.xfail(strict=False, reason="known hang, open: on a fresh-clone CI venv (2 runs) the driver did not exit "
                   "within the limit after SIGINT while a Learner.update spun in an OpenMP barrier; passes on the dev venv")
def test_ctrl_c_leaves_nothing_running(tiny_model: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"}
    cmd = [sys.executable, "-m", "rltrain.cli", "train", str(TINY), f"model.name={tiny_model}", f"trainer.output_dir={tmp_path}",
           "trainer.steps=500", "rollout.engine=transformers", "learner.num_learners=1", "env.eval_tasks=0"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    metrics = tmp_path / "tiny" / "metrics.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not (metrics.exists() and metrics.read_text().strip()):
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    started = psutil.Process(proc.pid).children(recursive=True)
    assert started, "the run should have started Ray and its actors"
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=180)  # stopping each role waits up to 15 s for it to release its engine
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # leave nothing behind for the tests that follow
        for child in started:
            if child.is_running():
                child.kill()
        raise
    assert proc.returncode == 130 and "interrupted; all actors were stopped" in stderr
    deadline = time.time() + 30
    while (alive := [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]) and time.time() < deadline:
        time.sleep(1)
    assert not alive, [p.cmdline()[:3] for p in alive]
