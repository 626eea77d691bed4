"""The console of a quickstart-shaped tiny run (issue 13 part 5), and its report (part 6), through the real CLI.

Needs the hooks of rltrain/console.py in the CLI (`setup_driver`), in `ray.init` (`ray_init_options`) and in the
driver (`attach_run_log`, `write_report` at the end of every run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from rltrain.report import build_figures, load_run

pytestmark = [pytest.mark.ray, pytest.mark.vllm]
ROOT = Path(__file__).parents[2]
TINY = ROOT / "launch" / "configs" / "tiny.yaml"
MAX_LINES = 30


def console_lines(text: str) -> list[str]:
    """Lines as a person sees them: a progress bar redraws its own line with \\r."""
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n") if line.strip()]


def check_console(console: str, run_dir: Path, steps: int) -> None:
    lines = console_lines(console)
    assert len(lines) <= MAX_LINES, f"{len(lines)} console lines:\n" + "\n".join(lines)
    assert not any("pid=" in line for line in lines), "an actor's output reached the console"  # Ray's "(Role pid=N)"
    logs = run_dir / "logs"
    names = {p.name for p in logs.iterdir()}
    assert {"driver.log", "rollout-0.log", "learner-0.log", "accountant.log"} <= names, names
    rollout = (logs / "rollout-0.log").read_text()
    assert "rollout-0 started" in rollout and "EngineCore" in rollout  # the vLLM engine process's own output
    # the report, written by the driver at the end of the run, from the run's real metrics
    assert (run_dir / "report.html").exists() and (run_dir / "report" / "reward.png").exists()
    figures = build_figures([load_run(run_dir)])
    reward = next(ax for ax in figures["reward"].axes if ax.get_title() == "training reward (mean)")
    assert list(reward.get_lines()[0].get_xdata()) == list(range(1, steps + 1))


def test_default_console_is_short_and_actors_write_role_logs(tiny_model: Path, tmp_path: Path) -> None:
    temp = tempfile.mkdtemp(prefix="rlc-", dir="/tmp")  # a private Ray temp dir (short: socket paths)
    shm_before = {p.name for p in Path("/dev/shm").glob("psm_*")}
    try:
        out = subprocess.run(
            [sys.executable, "-m", "rltrain.cli", "train", str(TINY), f"model.name={tiny_model}",
             f"trainer.output_dir={tmp_path}", "trainer.steps=2", "rollout.engine=vllm", "rollout.num_workers=1",
             "learner.num_learners=1", "ray.num_cpus=4"],
            cwd=ROOT, env={**os.environ, "RAY_TMPDIR": temp}, capture_output=True, timeout=600)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    # bytes, decoded by hand: text mode would turn the progress bar's \r into line breaks
    stdout, stderr = out.stdout.decode(errors="replace"), out.stderr.decode(errors="replace")
    assert out.returncode == 0, stderr[-5000:]
    check_console(stdout + stderr, tmp_path / "tiny", steps=2)
    # a normal shutdown leaves none of the engine's shared-memory buffers (rltrain/engines/shm.py)
    assert {p.name for p in Path("/dev/shm").glob("psm_*")} - shm_before == set()
