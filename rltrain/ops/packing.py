"""Sequence packing: several samples in one row, each attending only to itself (block-diagonal causal attention).

The one packing implementation of the project (SFT now, RL batches later). A packed row concatenates samples;
`position_ids` restart at 0 at each sample start and `cu_seqlens` holds the sample boundaries, as
flash-attention's varlen kernels take them (`attention_mask=None` + `position_ids` with flash_attention_2: the
model detects the restarts). For eager and SDPA attention, `block_causal_mask` builds the explicit 4-D additive
mask, which gives exactly the logits each sample gets alone (test: tests/ops/test_packing.py, packed vs padded).

Shapes: R packed rows, L tokens per row (the longest row; shorter rows are right-padded with `pad_id`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PackedBatch:
    """Samples packed into rows.

    Attributes:
        input_ids: (R, L) long.
        position_ids: (R, L) long, restarting at 0 at each sample; padding continues the last sample's count.
        loss_mask: (R, L) long, the samples' masks side by side (0 on padding).
        seq_lens: per row, the lengths of its samples in order (padding not included).
        rows_of: for sample i (input order), (row, start) of where it sits.
    """

    input_ids: Tensor
    position_ids: Tensor
    loss_mask: Tensor
    seq_lens: list[list[int]]
    rows_of: list[tuple[int, int]]

    def cu_seqlens(self, row: int) -> Tensor:
        """Cumulative sample boundaries of `row` (int32, starting at 0), flash-attention's varlen format."""
        return torch.tensor([0, *torch.tensor(self.seq_lens[row]).cumsum(0).tolist()], dtype=torch.int32)


def plan_bins(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices of `lengths` grouped into bins of at most `capacity` tokens (first-fit decreasing).

    A sample longer than `capacity` gets a bin of its own (it is never cut: cutting would change its loss)."""
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        slot = next((b for b, r in enumerate(room) if r >= lengths[i]), None)
        if slot is None:
            bins.append([i])
            room.append(capacity - lengths[i])
        else:
            bins[slot].append(i)
            room[slot] -= lengths[i]
    return bins


def pack(sequences: list[list[int]], masks: list[list[int]], capacity: int, pad_id: int,
         bins: list[list[int]] | None = None) -> PackedBatch:
    """Pack `sequences` (with their loss masks) into rows of at most `capacity` tokens (`plan_bins` unless given)."""
    if len(sequences) != len(masks):
        raise ValueError(f"pack got {len(sequences)} sequences but {len(masks)} masks")
    bins = bins if bins is not None else plan_bins([len(s) for s in sequences], capacity)
    width = max(sum(len(sequences[i]) for i in b) for b in bins)
    ids = torch.full((len(bins), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(bins), width), dtype=torch.long)
    loss = torch.zeros((len(bins), width), dtype=torch.long)
    rows_of: list[tuple[int, int]] = [(0, 0)] * len(sequences)
    seq_lens: list[list[int]] = []
    for r, b in enumerate(bins):
        start = 0
        for i in b:
            n = len(sequences[i])
            ids[r, start:start + n] = torch.tensor(sequences[i], dtype=torch.long)
            pos[r, start:start + n] = torch.arange(n)
            loss[r, start:start + n] = torch.tensor(masks[i], dtype=torch.long)
            rows_of[i] = (r, start)
            start += n
        pos[r, start:] = torch.arange(width - start) + (pos[r, start - 1] + 1 if start else 0)
        seq_lens.append([len(sequences[i]) for i in b])
    return PackedBatch(ids, pos, loss, seq_lens, rows_of)


def segment_ids(position_ids: Tensor) -> Tensor:
    """(R, L) -> (R, L): which sample of its row each token belongs to (a new one wherever position_ids restart)."""
    starts = torch.zeros_like(position_ids, dtype=torch.bool)
    starts[:, 1:] = position_ids[:, 1:] <= position_ids[:, :-1]
    return starts.long().cumsum(dim=1)


def block_causal_mask(position_ids: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """(R, L) -> (R, 1, L, L) additive mask: 0 where token q may attend to token k (same sample, k <= q), else the
    dtype's minimum. Padding at a row's end forms its own segment, so it never leaks into a sample."""
    seg = segment_ids(position_ids)  # (R, L)
    length = position_ids.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=position_ids.device).tril()  # (L, L)
    allowed = (seg[:, :, None] == seg[:, None, :]) & causal  # (R, L, L)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=position_ids.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


def unpack(values: Tensor, packed: PackedBatch) -> list[Tensor]:
    """Per-token `values` (R, L) of a packed batch -> one (len_i,) tensor per sample, in input order."""
    lengths = {i: n for r, b in enumerate(packed.seq_lens) for i, n in zip(_row_members(packed, r), b)}
    return [values[r, s:s + lengths[i]] for i, (r, s) in enumerate(packed.rows_of)]


def _row_members(packed: PackedBatch, row: int) -> list[int]:
    return sorted((i for i, (r, _s) in enumerate(packed.rows_of) if r == row), key=lambda i: packed.rows_of[i][1])
