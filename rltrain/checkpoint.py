"""Checkpoints of a run, `<run>/step_<N>/`, written atomically with a retention limit; and resuming from them.

One checkpoint holds:

    step_<N>/deepspeed/       every learner rank's DeepSpeed state: weights, optimizer, scheduler (engine.save_checkpoint)
    step_<N>/rank_<r>.pkl     each rank's RNG states (python, numpy, torch) and its update counter
    step_<N>/driver.pkl       the driver's RNG states
    step_<N>/state.json       step, weight version, the learners' source model folder, eval-before metrics
    step_<N>/config.yaml      the resolved config of the run that wrote it
    <run>/latest              the name of the newest complete checkpoint, e.g. "step_4"

The data position is the step itself: tasks are a pure function of (trainer.seed, step). The asynchronous
trainer's pending rollout is not saved; a resumed run submits it again (with the restored weights).

Atomicity: everything is written into `step_<N>.tmp/`, which is renamed to `step_<N>/` only when complete;
`latest` is then replaced through `latest.tmp` + rename. A failed write (a full disk) removes the partial
folder and leaves `latest` pointing at the previous complete checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import random
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rltrain.config import RunConfig, to_dict
from rltrain.config.loader import given
from rltrain.errors import CallTimedOut, ConfigError, RoleFailed

logger = logging.getLogger(__name__)

DS_TAG = "deepspeed"
"""DeepSpeed's tag: its files go to `step_<N>/deepspeed/`."""
LATEST = "latest"
STATE = "state.json"
CONFIG = "config.yaml"
DRIVER_RNG = "driver.pkl"

RESUME_KEYS = (
    "model.name", "learner.num_learners", "learner.zero_stage", "learner.dtype", "learner.lora",
    "learner.micro_batch_size", "learner.mini_batch_size", "trainer.prompts_per_step", "trainer.group_size",
)
"""Keys that must equal the checkpoint's: they fix the model, the DeepSpeed partitioning and the batch shape
that the saved optimizer state and data position describe. Others (lr, steps, logging...) may change."""


class CheckpointError(RoleFailed):
    """A checkpoint could not be written or read. A RoleFailed, so the CLI reports it in one line (exit 1)."""


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint on disk, as `load` read it."""

    path: Path
    step: int
    version: int
    state: dict[str, Any]
    config: dict[str, Any]

    @property
    def driver_rng(self) -> dict[str, Any]:
        with (self.path / DRIVER_RNG).open("rb") as f:
            return pickle.load(f)


def step_name(step: int) -> str:
    return f"step_{step}"


def rank_file(folder: str | Path, rank: int) -> Path:
    return Path(folder) / f"rank_{rank}.pkl"


# --- RNG states: the driver and every learner rank save and restore the same three generators -----------------

def rng_state() -> dict[str, Any]:
    """Python's, numpy's and torch's (CPU, and CUDA where present) generator states."""
    import numpy as np
    import torch

    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- writing -------------------------------------------------------------------------------------------------

def write_checkpoint(run_dir: Path, step: int, keep: int, write_parts: Callable[[Path], None]) -> Path:
    """Write `step_<N>/` atomically: `write_parts(tmp)` fills a temporary folder, which is renamed when complete;
    then `latest` is moved to it and all but the newest `keep` checkpoints are deleted. Returns the folder.

    Any failure (OSError such as a full disk, a learner that could not save) removes the partial folder, leaves
    `latest` and the older checkpoints untouched and raises CheckpointError saying so.
    """
    final = run_dir / step_name(step)
    tmp = run_dir / f"{step_name(step)}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)  # the remains of a write that was interrupted
    try:
        tmp.mkdir(parents=True)
        write_parts(tmp)
        _fsync_tree(tmp)
        if final.exists():  # a step written before by an earlier attempt of this run (resumed from further back)
            old = run_dir / f"{step_name(step)}.old"
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
        _write_atomic(run_dir / LATEST, step_name(step) + "\n")
    except CallTimedOut:  # a stall, not a failed write: the watchdog reports it (its stacks say where it hung)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except (OSError, RoleFailed) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        previous = read_latest(run_dir)
        kept = f"the previous checkpoint {run_dir / previous} is intact and `latest` still names it" if previous else \
            "no earlier checkpoint exists"
        raise CheckpointError(f"writing checkpoint {final} failed ({type(err).__name__}: {err}); {kept}. Free disk space "
                              f"in {run_dir} (each checkpoint holds weights + optimizer state), lower "
                              f"trainer.keep_checkpoints, or set trainer.checkpoint_every=0") from err
    prune(run_dir, keep)
    return final


def write_driver_state(folder: Path, *, step: int, version: int, config: dict[str, Any], extra: dict[str, Any]) -> None:
    """The driver's share of a checkpoint: state.json, config.yaml and its RNG states."""
    state = {"step": step, "weight_version": version, "time": time.time(), **extra}
    (folder / STATE).write_text(json.dumps(state, indent=2))
    (folder / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    with (folder / DRIVER_RNG).open("wb") as f:
        pickle.dump(rng_state(), f)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_tree(folder: Path) -> None:
    """Flush file contents before the rename makes the checkpoint visible (a crash must not leave empty files)."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def complete_steps(run_dir: Path) -> list[int]:
    """Steps of the complete checkpoints in `run_dir`, oldest first (`.tmp`/`.old` folders are not complete)."""
    steps = []
    for path in run_dir.glob("step_*"):
        suffix = path.name.removeprefix("step_")
        if path.is_dir() and suffix.isdigit() and (path / STATE).is_file():
            steps.append(int(suffix))
    return sorted(steps)


def prune(run_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` complete checkpoints (never the one `latest` names)."""
    latest = read_latest(run_dir)
    for step in complete_steps(run_dir)[:-keep]:
        if step_name(step) != latest:
            shutil.rmtree(run_dir / step_name(step), ignore_errors=True)


def read_latest(run_dir: Path) -> str | None:
    path = run_dir / LATEST
    return path.read_text().strip() if path.is_file() else None


# --- reading and resuming -------------------------------------------------------------------------------------

def resolve(path: str | Path) -> Path:
    """A run folder (its `latest` checkpoint) or a `step_<N>` folder -> the checkpoint folder."""
    path = Path(path)
    if (path / STATE).is_file():
        return path
    if not path.is_dir():
        raise ConfigError(f"checkpoint {str(path)!r} does not exist; give a run folder (runs/<name>) or one of its "
                          f"step_<N> folders")
    latest = read_latest(path)
    if latest is None:
        found = complete_steps(path)
        hint = f"; its complete checkpoints: {', '.join(step_name(s) for s in found)}" if found else \
            "; set trainer.checkpoint_every=N in the run that should be resumable"
        raise ConfigError(f"{path} has no `latest` checkpoint pointer and is not a step_<N> folder{hint}")
    folder = path / latest
    if not (folder / STATE).is_file():
        raise ConfigError(f"{path / LATEST} names {latest}, which is missing or incomplete; resume from an explicit "
                          f"step_<N> folder in {path}")
    return folder


def load(path: str | Path) -> Checkpoint:
    """Read a checkpoint's driver state and config (the learners read their own files)."""
    folder = resolve(path)
    state = json.loads((folder / STATE).read_text())
    config = yaml.safe_load((folder / CONFIG).read_text())
    return Checkpoint(folder, int(state["step"]), int(state["weight_version"]), state, config)


def _get(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def check_compatible(saved: dict[str, Any], current: dict[str, Any], keys: Iterable[str] = RESUME_KEYS) -> None:
    """Raise ConfigError naming every key where `current` differs from the checkpoint's config in a way that
    breaks resuming (see RESUME_KEYS)."""
    diffs = [f"{key}: checkpoint {_get(saved, key)!r}, now {_get(current, key)!r}"
             for key in keys if _get(saved, key) != _get(current, key)]
    if diffs:
        raise ConfigError("cannot resume: the config differs from the checkpoint's in keys that fix the model, the "
                          "DeepSpeed state or the batch shape (" + "; ".join(diffs) + "). Set them back to the "
                          "checkpoint's values, or start a new run without trainer.resume")


def for_resume(cfg: RunConfig) -> Checkpoint | None:
    """The checkpoint named by trainer.resume (None without it), checked against `cfg`: part of the pre-flight, so a
    wrong resume fails before Ray starts (and in --dry-run)."""
    if not cfg.trainer.resume:
        return None
    ckpt = load(cfg.trainer.resume)
    _adopt_default_zero_stage(cfg, ckpt.config)
    check_compatible(ckpt.config, to_dict(cfg))
    if cfg.trainer.steps <= ckpt.step:
        raise ConfigError(f"trainer.steps={cfg.trainer.steps} but the checkpoint {ckpt.path} is already at step {ckpt.step}; "
                          f"raise trainer.steps to train further (it counts from step 0, not from the checkpoint)")
    return ckpt


def _adopt_default_zero_stage(cfg: RunConfig, saved: dict[str, Any]) -> None:
    """An unset `learner.zero_stage` resumes at the checkpoint's stage: the default changed (ZeRO-0 for one rank), and
    a run started under the old default must still resume without the user naming the stage."""
    stage = _get(saved, "learner.zero_stage")
    if isinstance(stage, int) and stage != cfg.learner.zero_stage and not given(cfg.learner, "zero_stage"):
        logger.info("learner.zero_stage: %d, as in the checkpoint (unset here; set it to override)", stage)
        object.__setattr__(cfg.learner, "zero_stage", stage)  # frozen, resolved in __post_init__ the same way


def _step_of(line: str) -> float:
    """A JSONL line's step; infinity (dropped by the trim) for a blank or torn line: a driver killed mid-write."""
    try:
        return float(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError):
        return float("inf")


def trim_jsonl(path: Path, last_step: int) -> None:
    """Drop the lines of steps after `last_step` (a run that went on past its last checkpoint before it stopped),
    so a resumed run appends without duplicates. Rewritten atomically."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if _step_of(line) <= last_step]
    if len(kept) != len(lines):
        _write_atomic(path, "".join(kept))
