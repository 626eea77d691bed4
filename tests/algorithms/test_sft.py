"""Tests for rltrain/algorithms/sft.py: batch layout and the masked NLL, by hand."""

import math

import torch

from rltrain.algorithms.base import LossInputs
from rltrain.algorithms.sft import SFT, samples_to_batch, trajectory_samples
from rltrain.data.sft import SFTSample
from rltrain.types import Trajectory


def test_samples_to_batch_pads_right_and_keeps_masks():
    batch = samples_to_batch([SFTSample("a", [5, 6, 7], [0, 1, 1]), SFTSample("b", [8, 9], [1, 1])], pad_id=0)
    assert batch.input_ids.tolist() == [[5, 6, 7], [8, 9, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch.loss_mask.tolist() == [[False, True, True], [False, True, False]]  # position 0 is never a target


def test_masked_nll_by_hand():
    logprobs = torch.tensor([[0.0, -1.0, -2.0], [0.0, -3.0, -9.0]], requires_grad=True)
    mask = torch.tensor([[False, True, True], [False, True, False]])
    zeros = torch.zeros(2, 3)
    loss, metrics = SFT().loss(LossInputs(logprobs, zeros, zeros, None, None, zeros, mask))
    assert math.isclose(loss.item(), (1 + 2 + 3) / 3)  # token-mean over the 3 target tokens; -9 is masked out
    loss.backward()
    assert torch.allclose(logprobs.grad, torch.tensor([[0.0, -1 / 3, -1 / 3], [0.0, -1 / 3, 0.0]]))
    assert metrics["sft/target_tokens"].item() == 3


def test_trajectory_policy_tokens_are_targets():
    traj = Trajectory(task_id="t", group_id=1, env="e", prompt_ids=[1, 2], response_ids=[3, 4, 5], loss_mask=[1, 0, 1])
    [sample] = trajectory_samples([traj])
    assert sample.input_ids == [1, 2, 3, 4, 5] and sample.loss_mask == [0, 0, 1, 0, 1]
