"""`rltrain` on the command line: help that teaches, and config errors that stop before anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

QUICKSTART = str(Path(__file__).parents[1] / "launch" / "configs" / "quickstart.yaml")


def rltrain(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rltrain.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_shows_examples() -> None:
    out = rltrain("--help")
    assert out.returncode == 0 and "rltrain train launch/configs/quickstart.yaml" in out.stdout


def test_help_config_documents_every_key() -> None:
    out = rltrain("train", "--help-config")
    assert out.returncode == 0
    assert "learner.lr = 1e-06" in out.stdout and "algorithm.grpo.clip_high = 0.2" in out.stdout


def test_dry_run_prints_resolved_config() -> None:
    out = rltrain("train", QUICKSTART, "--dry-run", "learner.lr=2e-6")
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load(out.stdout)["learner"]["lr"] == 2e-6


def test_config_errors_exit_2_with_the_fix() -> None:
    out = rltrain("train", QUICKSTART, "learner.micro_batch_size=3")
    assert out.returncode == 2 and "try learner.micro_batch_size=" in out.stderr
    out = rltrain("train", QUICKSTART, "model.name=not-a-model", "--dry-run")
    assert out.returncode == 0  # dry-run validates the config, not the model
    out = rltrain("train", QUICKSTART, "model.name=not-a-model")
    assert out.returncode == 2 and "model.name='not-a-model' is not a local folder" in out.stderr
    assert "Starting" not in out.stderr  # nothing was started
