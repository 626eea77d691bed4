"""Tests for rltrain/ops/advantages.py: hand-computed cases and loop references."""

import math
from collections import defaultdict

import pytest
import torch

from rltrain.ops.advantages import flat_groups, grpo_outcome_advantages, rloo_advantages


def _grpo_loop(scores, group_ids, norm_by_std=True, eps=1e-6):
    """Slow reference: one Python loop per group, torch.std per group (verl's recipe)."""
    members = defaultdict(list)
    for i, g in enumerate(group_ids.tolist()):
        members[g].append(i)
    out = torch.empty_like(scores)
    for idx in members.values():
        group = scores[idx]
        if len(idx) == 1:
            mean, std = 0.0, 1.0
        else:
            mean, std = group.mean().item(), group.std().item()
        for i in idx:
            a = scores[i].item() - mean
            out[i] = a / (std + eps) if norm_by_std else a
    return out


def _rloo_loop(rewards, group_ids):
    """Slow reference: for each sample, average the other samples of its group."""
    ids = group_ids.tolist()
    vals = rewards.tolist()
    out = []
    for k, gk in enumerate(ids):
        others = [vals[j] for j, gj in enumerate(ids) if gj == gk and j != k]
        out.append(vals[k] - sum(others) / len(others))
    return torch.tensor(out, dtype=rewards.dtype)


def _random_groups(generator, num_groups=12, max_size=9):
    sizes = torch.randint(1, max_size, (num_groups,), generator=generator)
    ids = torch.repeat_interleave(torch.randperm(1000, generator=generator)[:num_groups], sizes)
    return ids[torch.randperm(ids.numel(), generator=generator)]


def test_grpo_hand_computed_mixed_groups():
    """spec §1.7 steps 2-3, §7.2 A3/A4: (S - mean) / (std + 1e-6); singleton: mean 0, std 1."""
    scores = torch.tensor([1.0, 2.0, 0.0, 5.0, 4.0, 0.0, 1.0])
    group_ids = torch.tensor([0, 1, 0, 2, 1, 0, 0])
    # group 0 = scores[0,2,5,6] = [1,0,0,1]: mean 0.5; squared devs 4 * 0.25 = 1;
    #   unbiased var 1/3, std 0.5773503; A = +-0.5 / (0.5773503 + 1e-6) = +-0.8660239
    # group 1 = scores[1,4] = [2,4]: mean 3; var (1 + 1) / 1 = 2, std 1.4142136;
    #   A = -+1 / (1.4142136 + 1e-6) = -+0.7071063
    # group 2 = scores[3] = [5]: singleton, mean 0, std 1: A = 5 / (1 + 1e-6) = 4.999995
    expected = torch.tensor([0.8660239, -0.7071063, -0.8660239, 4.999995, 0.7071063, -0.8660239, 0.8660239])
    torch.testing.assert_close(grpo_outcome_advantages(scores, group_ids), expected, rtol=0, atol=1e-6)


def test_grpo_hand_computed_without_std():
    """spec §1.7 step 3 / Dr. GRPO: norm_by_std=False gives S - mean (singleton: S - 0)."""
    scores = torch.tensor([1.0, 2.0, 0.0, 5.0, 4.0, 0.0, 1.0])
    group_ids = torch.tensor([0, 1, 0, 2, 1, 0, 0])
    # group 0 mean 0.5 -> [0.5, -0.5, -0.5, 0.5]; group 1 mean 3 -> [-1, 1]; group 2 -> 5 - 0
    expected = torch.tensor([0.5, -1.0, -0.5, 5.0, 1.0, -0.5, 0.5])
    torch.testing.assert_close(grpo_outcome_advantages(scores, group_ids, norm_by_std=False), expected, rtol=0, atol=0)


def test_grpo_eps_and_tied_group():
    """spec §7.2 A3: eps is added to the std; a tied group (std 0) gets advantage 0, not NaN."""
    # [1, 3]: mean 2, std sqrt(2) = 1.4142136; with eps 0.5: -1 / 1.9142136 = -0.5224077
    got = grpo_outcome_advantages(torch.tensor([1.0, 3.0]), torch.tensor([4, 4]), eps=0.5)
    torch.testing.assert_close(got, torch.tensor([-0.5224077, 0.5224077]), rtol=0, atol=1e-6)
    # [2, 2, 2]: mean 2, std 0: 0 / (0 + 1e-6) = 0
    tied = grpo_outcome_advantages(torch.tensor([2.0, 2.0, 2.0]), torch.tensor([1, 1, 1]))
    assert torch.equal(tied, torch.zeros(3))


@pytest.mark.parametrize("norm_by_std", [True, False])
def test_grpo_matches_loop_on_random_groups(norm_by_std):
    """spec §7.2 A3: vectorised GRPO equals a per-group loop on random, shuffled, uneven groups."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        group_ids = _random_groups(gen)
        scores = torch.randn(group_ids.numel(), generator=gen, dtype=torch.float64)
        got = grpo_outcome_advantages(scores, group_ids, norm_by_std=norm_by_std)
        want = _grpo_loop(scores, group_ids, norm_by_std=norm_by_std)
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_grpo_is_constant_for_autograd():
    """spec §7.2: advantages are constants in the loss; no graph is built through the scores."""
    scores = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    assert not grpo_outcome_advantages(scores, torch.tensor([0, 0, 0])).requires_grad


def test_grpo_rejects_bad_inputs():
    """spec §7.2 A3: shape and dtype errors name what was seen."""
    with pytest.raises(ValueError, match=r"1-D scores \(B,\).*got scores \(2, 3\)"):
        grpo_outcome_advantages(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"got scores \(3,\) and group_ids \(2,\)"):
        grpo_outcome_advantages(torch.zeros(3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(TypeError, match="integer group_ids"):
        grpo_outcome_advantages(torch.zeros(3), torch.zeros(3))
    with pytest.raises(TypeError, match="floating-point scores"):
        grpo_outcome_advantages(torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long))


def test_rloo_hand_computed():
    """spec §3.1, §7.2 A5: A_k = r_k - mean of the other K - 1 rewards of the group."""
    rewards = torch.tensor([1.0, 4.0, 2.0, 0.0, 6.0])
    group_ids = torch.tensor([7, 9, 7, 9, 7])
    # group 7 = [1, 2, 6]: A = 1 - (2+6)/2 = -3; 2 - (1+6)/2 = -1.5; 6 - (1+2)/2 = 4.5
    # group 9 = [4, 0]:    A = 4 - 0 = 4;        0 - 4 = -4
    expected = torch.tensor([-3.0, 4.0, -1.5, -4.0, 4.5])
    torch.testing.assert_close(rloo_advantages(rewards, group_ids), expected, rtol=0, atol=1e-6)


def test_rloo_matches_loop_on_random_groups():
    """spec §7.2 A5: vectorised RLOO equals the leave-one-out loop; each group sums to 0."""
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        group_ids = _random_groups(gen)
        sizes = torch.unique(group_ids, return_counts=True)[1]
        group_ids = group_ids[torch.isin(group_ids, torch.unique(group_ids)[sizes >= 2])]
        rewards = torch.randn(group_ids.numel(), generator=gen, dtype=torch.float64)
        got = rloo_advantages(rewards, group_ids)
        torch.testing.assert_close(got, _rloo_loop(rewards, group_ids), rtol=1e-10, atol=1e-10)
        for g in torch.unique(group_ids):
            assert math.isclose(got[group_ids == g].sum().item(), 0.0, abs_tol=1e-10)


def test_rloo_singleton_group_raises():
    """spec §7.2 A5: a group of one sample has no leave-one-out baseline -> ValueError naming it."""
    with pytest.raises(ValueError, match=r"at least 2 samples per group.*group id\(s\) \[3\]"):
        rloo_advantages(torch.tensor([1.0, 2.0, 5.0]), torch.tensor([0, 0, 3]))


@pytest.mark.parametrize("value", [0.1, 0.7])
@pytest.mark.parametrize("size", [7, 8, 16])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grpo_tied_group_is_exactly_zero(value, size, dtype):
    """spec §1.7 steps 2-3: a tied group has std 0, so (S - mean) / (std + eps) is 0 -- exactly, not the
    float rounding of a mean that binary cannot represent (float32 gave 0.056 for 0.7 x 8 and up to 0.106 for
    groups of 16). A mixed group beside it is unaffected."""
    tied = torch.full((size,), value, dtype=dtype)
    mixed = torch.tensor([0.0, 1.0], dtype=dtype)
    got = grpo_outcome_advantages(torch.cat([tied, mixed]), torch.tensor([3] * size + [5, 5]))
    assert torch.equal(got[:size], torch.zeros(size, dtype=dtype))
    assert got[size:].tolist() == pytest.approx([-0.5 / (math.sqrt(0.5) + 1e-6), 0.5 / (math.sqrt(0.5) + 1e-6)])
    # Dr. GRPO (no std) too: S - mean is 0 exactly for a tie
    assert torch.equal(grpo_outcome_advantages(tied, torch.zeros(size, dtype=torch.long), norm_by_std=False),
                       torch.zeros(size, dtype=dtype))


def test_flat_groups_marks_ties_of_two_or_more_only():
    """A singleton keeps its own-score advantage (spec §1.7: mean 0, std 1), so it is not 'flat'."""
    scores = torch.tensor([0.7, 0.7, 0.7, 0.2, 0.3, 0.9])
    flat, inverse = flat_groups(scores, torch.tensor([1, 1, 1, 2, 2, 4]))
    assert flat.tolist() == [True, False, False] and inverse.tolist() == [0, 0, 0, 1, 1, 2]
