"""Supervised fine-tuning as an algorithm of the shared learner: the masked negative log-likelihood.

The learner is algorithm-blind (rltrain/algorithms/base.py): it computes the policy's per-token log-probs and asks
for the loss. SFT's loss is the NLL of the target tokens (`loss_mask`: assistant turns only, docs/sft.md),
reduced by `loss_agg_mode` (rltrain.ops.aggregate: "token-mean" averages over the micro-batch's target tokens, as
TRL and LLaMA-Factory do). No reference model, one pass per batch.

`rltrain sft` (rltrain/sft.py) feeds batches built by `samples_to_batch`; `make_batch` also turns trajectories into
an SFT batch (their policy tokens are the targets), for training on filtered episodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rltrain.algorithms.base import ALGORITHMS, Algorithm, LossInputs
from rltrain.data.sft import SFTSample
from rltrain.ops import AGG_MODES, aggregate_loss, masked_mean
from rltrain.types import TrainBatch, Trajectory


@dataclass(frozen=True)
class SFTLossConfig:
    loss_agg_mode: str = "token-mean"
    """How per-token NLLs reduce to the micro-batch loss (rltrain.ops.aggregate.AGG_MODES)."""

    def __post_init__(self) -> None:
        if self.loss_agg_mode not in AGG_MODES:
            raise ValueError(f"sft.loss_agg_mode={self.loss_agg_mode!r} must be one of {', '.join(AGG_MODES)}")


def samples_to_batch(samples: Sequence[SFTSample], pad_id: int) -> TrainBatch:
    """Right-padded batch of SFT samples; `loss_mask` marks their target tokens (aligned with `input_ids`)."""
    width = max(len(s.input_ids) for s in samples)
    ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(samples), width), dtype=torch.long)
    mask = torch.zeros((len(samples), width), dtype=torch.bool)
    for i, s in enumerate(samples):
        n = len(s.input_ids)
        ids[i, :n] = torch.tensor(s.input_ids)
        attention[i, :n] = 1
        mask[i, :n] = torch.tensor(s.loss_mask, dtype=torch.bool)
    mask[:, 0] = False  # position 0 has no predecessor to predict it from
    zeros = torch.zeros((len(samples), width))
    return TrainBatch(ids, attention, mask, zeros, zeros.clone(), torch.zeros(len(samples)))


def packed_batch(samples: Sequence[SFTSample], pad_id: int, capacity: int) -> TrainBatch:
    """Samples packed into rows of at most `capacity` tokens (rltrain.ops.packing): `position_ids` restart at each
    sample, and the learner attends block-diagonally (actors/learner.py `model_inputs`, docs/sft.md "Packing")."""
    from rltrain.ops.packing import pack

    packed = pack([s.input_ids for s in samples], [s.loss_mask for s in samples], capacity, pad_id)
    attention = torch.zeros_like(packed.input_ids)
    for r, lengths in enumerate(packed.seq_lens):
        attention[r, :sum(lengths)] = 1
    mask = packed.loss_mask.bool()
    for r, lengths in enumerate(packed.seq_lens):  # the first token of each sample has no predecessor in it
        starts = torch.tensor([0, *lengths[:-1]]).cumsum(0)
        mask[r, starts] = False
    zeros = torch.zeros(packed.input_ids.shape)
    return TrainBatch(packed.input_ids, attention, mask, zeros, zeros.clone(), torch.zeros(len(packed.seq_lens)),
                      position_ids=packed.position_ids)


def trajectory_samples(trajectories: Sequence[Trajectory]) -> list[SFTSample]:
    """The policy tokens of trajectories as SFT targets (prompt and environment tokens as context)."""
    return [SFTSample(f"{t.task_id}#{t.group_id}", t.prompt_ids + t.response_ids, [0] * len(t.prompt_ids) + list(t.loss_mask))
            for t in trajectories]


@ALGORITHMS.register("sft")
class SFT(Algorithm):
    """Masked NLL on target tokens."""

    def __init__(self, cfg: SFTLossConfig | None = None) -> None:
        self.cfg = cfg or SFTLossConfig()

    def make_batch(self, trajectories: list[Trajectory], tokenizer: Any) -> tuple[TrainBatch, dict[str, float]]:
        samples = trajectory_samples(trajectories)
        batch = samples_to_batch(samples, tokenizer.pad_token_id)
        return batch, {"sft/target_tokens": float(batch.loss_mask.sum())}

    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        nll = -inputs.policy_logprobs  # (B, T)
        mask = inputs.loss_mask
        loss = aggregate_loss(nll, mask, self.cfg.loss_agg_mode)
        return loss, {"sft/nll": masked_mean(nll.detach(), mask), "sft/target_tokens": mask.sum().float()}
