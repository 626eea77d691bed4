"""`rltrain sft` configuration: the run's usual sections (model, learner, trainer, placement, ray, watchdog) plus `sft:`.

An SFT YAML is an RL YAML minus what SFT does not use (env, rollout, reward, users, algorithm) plus an `sft:`
section (docs/sft.md). `load_sft_config` splits the two: the shared sections are validated by `RunConfig` exactly
as for `rltrain train`, and the learner group, checkpoints, metrics and export are the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rltrain.config.loader import ConfigError, apply_overrides, build, check, load_yaml
from rltrain.config.run import RunConfig
from rltrain.ops.schedule import SCHEDULES

PRESETS: dict[str, dict[str, Any]] = {
    # UserRL's cold start (spec §1.9): LLaMA-Factory full fine-tune, lr 1e-5 cosine, warmup_ratio 0.1, 3 epochs,
    # effective batch 8 per device.
    "userrl_cold_start": {"sft": {"epochs": 3, "lr_schedule": "cosine", "warmup_ratio": 0.1, "batch_size": 8},
                          "learner": {"lr": 1e-5}},
}
"""Named recipes (`sft.preset`); keys written in the YAML or as overrides win over the preset's."""


@dataclass(frozen=True)
class SFTDataset:
    path: str
    """A data file (.jsonl, .json or .parquet) of trajectories in any format `rltrain data convert` reads."""
    weight: float = 1.0
    """How many times each epoch sees this set's samples: 2.0 twice, 0.5 a (seeded) half."""
    format: str | None = None
    """unified, sharegpt or hf; null detects it from each row's keys."""

    def __post_init__(self) -> None:
        check(self.weight > 0, f"sft.datasets[{self.path}].weight={self.weight} must be > 0 (remove the set to drop it)")


@dataclass(frozen=True)
class SFTConfig:
    datasets: tuple[SFTDataset, ...] = ()
    """The training mixture."""
    validation: tuple[SFTDataset, ...] = ()
    """Held-out sets for the validation loss (weights ignored); empty: `val_ratio` of the mixture."""
    val_ratio: float = 0.0
    """Share of the mixture's trajectories held out for validation when `validation` is empty (seeded split)."""
    epochs: int = 3
    """Passes over the mixture."""
    batch_size: int = 8
    """Samples per optimizer step, across learner ranks (= learner.num_learners x micro_batch_size x accumulation)."""
    per_turn: bool = False
    """One sample per assistant turn (`<traj>---<idx>`, ActionStudio) instead of one per trajectory with every turn."""
    max_length: int = 4096
    """Longest sample in tokens; longer ones are dropped and counted (never cut: a cut target teaches nothing)."""
    packing: bool = False
    """Pack samples into rows of `max_length` tokens (block-diagonal attention, rltrain.ops.packing)."""
    lr_schedule: str = "cosine"
    """constant, cosine or linear decay after warmup (rltrain.ops.schedule)."""
    warmup_ratio: float = 0.1
    """Share of all optimizer steps spent in linear warmup."""
    min_lr_ratio: float = 0.0
    """The decay's floor, as a share of learner.lr."""
    eval_every: int = 0
    """Optimizer steps between validation losses; 0: at the end of each epoch."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (the schedule still spans all epochs, so a later resume continues it)."""
    loss_agg_mode: str = "token-mean"
    """How per-token NLLs reduce to a micro-batch loss (rltrain.ops.aggregate)."""
    preset: str | None = None
    """A named recipe from PRESETS (userrl_cold_start)."""

    def __post_init__(self) -> None:
        check(len(self.datasets) > 0, "sft.datasets is empty; list at least one {path: data.jsonl}")
        check(self.epochs >= 1, f"sft.epochs={self.epochs} must be >= 1")
        check(self.batch_size >= 1, f"sft.batch_size={self.batch_size} must be >= 1")
        check(0 <= self.val_ratio < 1, f"sft.val_ratio={self.val_ratio} must be in [0, 1)")
        check(0 <= self.warmup_ratio < 1, f"sft.warmup_ratio={self.warmup_ratio} must be in [0, 1)")
        check(self.lr_schedule in SCHEDULES, f"sft.lr_schedule={self.lr_schedule!r} must be one of {', '.join(SCHEDULES)}")
        check(self.max_length >= 16, f"sft.max_length={self.max_length} is too short for any chat sample")
        check(self.preset is None or self.preset in PRESETS,
              f"sft.preset={self.preset!r} is not a preset; choose one of {', '.join(PRESETS)}")


@dataclass(frozen=True)
class SFTRun:
    run: RunConfig
    sft: SFTConfig = field(default_factory=SFTConfig)


_UNUSED = ("env", "rollout", "reward", "users", "algorithm")


def _merge_missing(data: dict[str, Any], defaults: dict[str, Any]) -> None:
    for key, value in defaults.items():
        if isinstance(value, dict):
            _merge_missing(data.setdefault(key, {}), value)
        else:
            data.setdefault(key, value)


def load_sft_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> SFTRun:
    """Load an SFT YAML with dotted overrides (`sft.epochs=1`, `learner.lr=2e-5`), apply its preset, validate."""
    data = apply_overrides(load_yaml(path) if path is not None else {}, list(overrides))
    unused = [k for k in _UNUSED if k in data]
    if unused:
        raise ConfigError(f"{', '.join(unused)}: not used by `rltrain sft`; remove the section(s) (an RL config starts "
                          f"from the SFT output with model.name=runs/<sft>/final)")
    sft_data = data.pop("sft", None) or {}
    preset = sft_data.get("preset")
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"sft.preset={preset!r} is not a preset; choose one of {', '.join(PRESETS)}")
        merged = {"sft": sft_data, **data}
        _merge_missing(merged, PRESETS[preset])
        sft_data = merged.pop("sft")
        data = merged
    sft = build(SFTConfig, sft_data, "sft")
    # Every optimizer step is one "step" of the shared loop: a batch of `batch_size` samples, one mini-batch.
    trainer = data.setdefault("trainer", {})
    trainer.update(prompts_per_step=sft.batch_size, group_size=1, async_rollout=False)
    data.setdefault("learner", {})["mini_batch_size"] = sft.batch_size
    data.setdefault("rollout", {})["temperature"] = 1.0  # the learner's log-probs are the model's, untempered
    return SFTRun(run=build(RunConfig, data), sft=sft)
