"""Checkpoint folders without Ray: atomic writes, a failed write, retention, resume checks, log trimming."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from rltrain import checkpoint
from rltrain.config import load_config, to_dict
from rltrain.config.loader import ConfigError


def _write(run: Path, step: int, keep: int = 2) -> Path:
    def parts(folder: Path) -> None:
        (folder / "deepspeed").mkdir()
        (folder / "deepspeed" / "weights.pt").write_bytes(b"x" * 10)
        checkpoint.write_driver_state(folder, step=step, version=step, config={"trainer": {"seed": 0}}, extra={})

    return checkpoint.write_checkpoint(run, step, keep, parts)


def test_write_rename_latest_and_retention(tmp_path: Path) -> None:
    for step in (1, 2, 3):
        _write(tmp_path, step)
    assert checkpoint.read_latest(tmp_path) == "step_3"
    assert checkpoint.complete_steps(tmp_path) == [2, 3]  # keep=2: step_1 deleted after step_3 completed
    assert not list(tmp_path.glob("*.tmp"))
    ckpt = checkpoint.load(tmp_path)
    assert (ckpt.path.name, ckpt.step, ckpt.version) == ("step_3", 3, 3)
    assert checkpoint.load(tmp_path / "step_2").step == 2
    assert set(ckpt.driver_rng) >= {"python", "numpy", "torch"}


def test_full_disk_keeps_latest_and_previous_checkpoint(tmp_path: Path) -> None:
    _write(tmp_path, 1)

    def disk_full(folder: Path) -> None:
        (folder / "partial").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(checkpoint.CheckpointError, match=r"No space left.*step_1 is intact.*keep_checkpoints"):
        checkpoint.write_checkpoint(tmp_path, 2, 2, disk_full)
    assert checkpoint.read_latest(tmp_path) == "step_1"
    assert checkpoint.complete_steps(tmp_path) == [1]
    assert not (tmp_path / "step_2.tmp").exists() and not (tmp_path / "step_2").exists()


def test_rewriting_an_existing_step_replaces_it(tmp_path: Path) -> None:
    _write(tmp_path, 1)
    _write(tmp_path, 2)
    _write(tmp_path, 2)  # a resumed run passing a step an earlier attempt had written
    assert checkpoint.complete_steps(tmp_path) == [1, 2] and not list(tmp_path.glob("step_2.*"))


def test_resolve_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        checkpoint.resolve(tmp_path / "nope")
    with pytest.raises(ConfigError, match="checkpoint_every"):
        checkpoint.resolve(tmp_path)


def test_incompatible_config_names_the_keys() -> None:
    saved = to_dict(load_config(None, []))
    checkpoint.check_compatible(saved, to_dict(load_config(None, ["learner.lr=1e-3", "trainer.steps=99"])))
    changed = to_dict(load_config(None, ["learner.zero_stage=3", "trainer.group_size=8", "learner.micro_batch_size=4"]))
    with pytest.raises(ConfigError) as err:
        checkpoint.check_compatible(saved, changed)
    message = str(err.value)
    assert "learner.zero_stage: checkpoint 0, now 3" in message and "trainer.group_size" in message
    assert "learner.micro_batch_size" in message and "learner.lr" not in message


def test_trim_jsonl_drops_steps_after_the_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps({"step": s, "x": s}) + "\n" for s in (1, 2, 3, 3)))
    checkpoint.trim_jsonl(log, 2)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2]
    checkpoint.trim_jsonl(tmp_path / "missing.jsonl", 2)  # nothing to trim


def test_trim_jsonl_drops_a_line_torn_by_a_killed_driver(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps({"step": s}) + "\n" for s in (1, 2)) + '{"step": 3, "reward/me')
    checkpoint.trim_jsonl(log, 2)
    assert log.read_text() == "".join(json.dumps({"step": s}) + "\n" for s in (1, 2))


def test_config_keys_are_checked() -> None:
    with pytest.raises(ConfigError, match="keep_checkpoints"):
        load_config(None, ["trainer.keep_checkpoints=0"])
    assert load_config(None, []).trainer.checkpoint_every == 0
