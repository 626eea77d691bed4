"""`rltrain` on the command line: help that teaches, and config errors that stop before anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rltrain.cli import main

QUICKSTART = str(Path(__file__).parents[1] / "launch" / "configs" / "quickstart.yaml")
TINY = str(Path(__file__).parents[1] / "launch" / "configs" / "tiny.yaml")


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
    out = rltrain("train", QUICKSTART, "model.name=not-a-model")
    assert out.returncode == 2 and "model.name='not-a-model' is not a local folder" in out.stderr
    assert "Starting" not in out.stderr  # nothing was started


@pytest.mark.parametrize(("overrides", "needles"), [
    (["env.name=nope"], ["env.name='nope' is not registered", "arithmetic"]),
    (["algorithm.name=ppo2"], ["algorithm.name='ppo2'"]),
    (["model.name=/nonexistent/model"], ["model.name='/nonexistent/model'"]),
    (["rollout.max_new_tokens=100000", "model.max_model_len=512"],
     ["rollout.max_new_tokens=100000", "model.max_model_len=512"]),
    # the opening prompt (about 40 tokens of chat template and question) plus 250 new tokens exceed 256
    (["rollout.max_new_tokens=250"], ["longest opening prompt", "rollout.max_new_tokens=250", "model.max_model_len=256",
                                      "lower rollout.max_new_tokens to at most"]),
])
def test_dry_run_fails_like_a_real_run(tiny_model: Path, overrides: list[str], needles: list[str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run runs the pre-flight of `rltrain train` (issue 13, part 2): each failure exits 2 naming the key."""
    code = main(["train", TINY, "--dry-run", f"model.name={tiny_model}", *overrides])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "rltrain: config error:" in err
    for needle in needles:
        assert needle in err


def test_dry_run_accepts_a_good_config(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", TINY, "--dry-run", f"model.name={tiny_model}", "rollout.max_new_tokens=64"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["rollout"]["max_new_tokens"] == 64
