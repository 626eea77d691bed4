"""Trajectories -> padded tensors. Shared by every algorithm's `make_batch`."""

from __future__ import annotations

import dataclasses

import torch

from rltrain.types import TrainBatch, Trajectory


def pad_trajectories(trajectories: list[Trajectory], token_advantages: list[list[float]], pad_id: int) -> TrainBatch:
    """Right-pad prompt+response rows; per-token fields are aligned with `input_ids`.

    Args:
        trajectories: scored trajectories, one row each.
        token_advantages: per response token advantage of each trajectory (same length as its response).
        pad_id: token id used for padding (masked out everywhere).
    """
    width = max(len(t.prompt_ids) + len(t.response_ids) for t in trajectories)
    rows = len(trajectories)
    input_ids = torch.full((rows, width), pad_id, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((rows, width), dtype=torch.long)
    loss_mask = torch.zeros((rows, width), dtype=torch.bool)
    advantages = torch.zeros((rows, width), dtype=torch.float32)
    rollout_logprobs = torch.zeros((rows, width), dtype=torch.float32)
    for i, (traj, adv) in enumerate(zip(trajectories, token_advantages)):
        p, r = len(traj.prompt_ids), len(traj.response_ids)
        input_ids[i, : p + r] = torch.tensor(traj.prompt_ids + traj.response_ids)
        attention_mask[i, : p + r] = 1
        loss_mask[i, p : p + r] = torch.tensor(traj.loss_mask, dtype=torch.bool)
        advantages[i, p : p + r] = torch.tensor(adv, dtype=torch.float32)
        rollout_logprobs[i, p : p + r] = torch.tensor(traj.rollout_logprobs, dtype=torch.float32)
    rewards = torch.tensor([t.reward if t.reward is not None else 0.0 for t in trajectories], dtype=torch.float32)
    groups = torch.tensor([t.group_id for t in trajectories])
    return TrainBatch(input_ids, attention_mask, loss_mask, advantages * loss_mask, rollout_logprobs * loss_mask, rewards, groups)


FILLER_TOKENS = 2
"""Real tokens in a filler row: enough for one predicted position, so that every log-prob path (the fused head
selects real targets only) sees a non-empty row."""


def fill_to(batch: TrainBatch, size: int) -> TrainBatch:
    """Grow a batch to `size` rows with fully masked filler rows: the first `FILLER_TOKENS` tokens of row 0.

    Failed trajectories are dropped before batching; the filler rows keep the configured batch arithmetic
    (ranks x micro-batches) intact and contribute nothing to the loss. They are short, so a micro-batch made only
    of fillers is trimmed (`TrainBatch.select`) to a couple of positions instead of costing a copy of row 0 (for
    a packed batch, a whole packed row).
    """
    missing = size - len(batch)
    if missing <= 0:
        return batch
    filler = batch.select(torch.zeros(missing, dtype=torch.long))
    keep = min(FILLER_TOKENS, filler.input_ids.shape[1])
    masked = {"loss_mask", "advantages", "rollout_logprobs", "sequence_rewards", "answer_mask"}
    fields = {}
    for f in dataclasses.fields(TrainBatch):
        a, b = getattr(batch, f.name), getattr(filler, f.name)
        if a is None:
            fields[f.name] = None
            continue
        if f.name in masked:
            b = torch.zeros_like(b)
        elif f.name == "attention_mask":
            b = torch.zeros_like(b)
            b[:, :keep] = 1
        elif f.name == "position_ids":  # one segment, as `pack` gives a row's padding
            b = torch.arange(b.shape[1]).expand_as(b).clone()
        if a.dim() == 2:
            width = max(a.shape[1], b.shape[1])
            a, b = _pad_cols(a, width), _pad_cols(b, width)
        fields[f.name] = torch.cat([a, b])
    return TrainBatch(**fields)


def _pad_cols(x: torch.Tensor, width: int) -> torch.Tensor:
    return torch.nn.functional.pad(x, (0, width - x.shape[1]))
