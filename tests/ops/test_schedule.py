"""Tests for rltrain/ops/schedule.py against hand-computed values (cosine + warmup ratio, spec §1.9)."""

import math

import pytest
import torch

from rltrain.ops.schedule import lambda_scheduler, lr_factor, warmup_steps


def test_cosine_with_warmup_by_hand():
    total = 30
    warm = warmup_steps(total, 0.1)  # UserRL's cold start: warmup_ratio 0.1
    assert warm == 3
    assert [lr_factor(s, total, warmup=warm) for s in range(4)] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    # halfway through the decay (step 3 + 27/2 = 16.5): cos(pi/2) = 0 -> factor 0.5
    assert lr_factor(3 + 27 // 2, total, warmup=warm) == pytest.approx(0.5 * (1 + math.cos(math.pi * 13 / 27)))
    assert lr_factor(30, total, warmup=warm) == pytest.approx(0.0)
    assert lr_factor(30, total, warmup=warm, min_ratio=0.1) == pytest.approx(0.1)
    assert lr_factor(10, total, schedule="constant") == 1.0
    assert lr_factor(15, total, schedule="linear") == pytest.approx(0.5)


def test_torch_scheduler_follows_the_factor():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-5)
    sched = lambda_scheduler(opt, 10, warmup=2)
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([1e-5 * lr_factor(s, 10, warmup=2) for s in range(10)])


def test_unknown_schedule_names_the_key():
    with pytest.raises(ValueError, match="learner.lr_schedule"):
        lr_factor(0, 10, schedule="step")
