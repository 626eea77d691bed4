"""The data contract between roles: shape checks, row selection, lossless JSONL."""

from __future__ import annotations

import pytest
import torch

from rltrain.types import Generation, TrainBatch, Trajectory


def batch(rows: int = 4, width: int = 6) -> TrainBatch:
    lengths = torch.arange(rows) + 2  # row i has i + 2 real tokens
    attention = (torch.arange(width)[None, :] < lengths[:, None]).long()  # (B, T)
    return TrainBatch(torch.arange(rows * width).view(rows, width), attention, attention.bool(), torch.ones(rows, width),
                      torch.zeros(rows, width), torch.arange(rows, dtype=torch.float32))


def test_shape_mismatch_is_named() -> None:
    b = batch()
    with pytest.raises(ValueError, match=r"TrainBatch.advantages has shape \(4, 5\), expected \(4, 6\)"):
        TrainBatch(b.input_ids, b.attention_mask, b.loss_mask, b.advantages[:, :5], b.rollout_logprobs, b.sequence_rewards)


def test_select_trims_to_longest_row() -> None:
    part = batch().select(torch.tensor([0, 1]))
    assert part.input_ids.shape == (2, 3) and part.sequence_rewards.tolist() == [0.0, 1.0]
    assert [len(p) for p in batch().split(2)] == [2, 2]


def test_trajectory_append_bookkeeping() -> None:
    t = Trajectory(task_id="x", group_id=0, env="e", prompt_ids=[1, 2])
    t.append([3, 4], policy=True, logprobs=[-0.1, -0.2])
    t.append([5], policy=False)
    t.append([6], policy=True, logprobs=[-0.3])
    assert t.turn_boundaries == [0, 3] and t.loss_mask == [1, 1, 0, 1] and t.rollout_logprobs == [-0.1, -0.2, 0.0, -0.3]
    assert t.num_policy_tokens == 3 and Trajectory.from_json(t.to_json()) == t
    with pytest.raises(ValueError, match="one logprob each"):
        t.append([7], policy=True)
    with pytest.raises(ValueError, match="2 ids but 1 logprobs"):
        Generation([1, 2], [0.0], "stop")
