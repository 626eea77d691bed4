"""Learning-rate schedules: linear warmup, then constant or cosine decay (the SFT cold start's recipe, spec §1.9).

`lr_factor` is the multiplier of the base learning rate at an optimizer step, as Hugging Face's
`get_cosine_schedule_with_warmup` defines it (LLaMA-Factory's `lr_scheduler_type: cosine`, `warmup_ratio`):
warmup steps = ceil(warmup_ratio * total_steps); during warmup the factor rises linearly step / warmup_steps; after
it, cosine: 0.5 * (1 + cos(pi * progress)) with progress = (step - warmup) / (total - warmup), floored at `min_ratio`.
"""

from __future__ import annotations

import math

import torch

SCHEDULES = ("constant", "cosine", "linear")


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    return math.ceil(warmup_ratio * total_steps)


def lr_factor(step: int, total_steps: int, *, warmup: int = 0, schedule: str = "cosine", min_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate for optimizer step `step` (0-based) of `total_steps`."""
    if schedule not in SCHEDULES:
        raise ValueError(f"learner.lr_schedule={schedule!r} must be one of {', '.join(SCHEDULES)}")
    if step < warmup:
        return step / max(1, warmup)
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    decay = 0.5 * (1.0 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress
    return min_ratio + (1.0 - min_ratio) * decay


def lambda_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, *, warmup: int = 0, schedule: str = "cosine",
                     min_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """A torch scheduler following `lr_factor` (call `.step()` after each optimizer step; DeepSpeed does when it is
    passed as `lr_scheduler=` to `deepspeed.initialize`, and saves it in its checkpoints)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup=warmup, schedule=schedule, min_ratio=min_ratio))
