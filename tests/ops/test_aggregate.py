"""Tests for rltrain/ops/aggregate.py: hand-computed modes, empty rows, loop reference."""

import math

import pytest
import torch

from rltrain.ops.aggregate import AGG_MODES, aggregate_loss, masked_mean, masked_sum

NAN = float("nan")
# Masked-out entries hold junk (100, NaN) that must never reach the result.
LOSS = torch.tensor(
    [
        [1.0, 2.0, 3.0, 100.0],
        [4.0, 100.0, NAN, 100.0],
        [NAN, 100.0, 100.0, 100.0],
    ]
)
MASK = torch.tensor(
    [
        [True, True, True, False],
        [True, False, False, False],
        [False, False, False, False],
    ]
)


def _aggregate_loop(loss_mat, loss_mask, mode):
    """Slow reference: explicit per-row token lists."""
    rows = [[loss_mat[b, t].item() for t in range(loss_mat.shape[1]) if loss_mask[b, t]] for b in range(loss_mat.shape[0])]
    rows = [r for r in rows if r]
    if mode == "token-mean":
        tokens = [v for r in rows for v in r]
        return sum(tokens) / len(tokens)
    if mode == "seq-mean-token-sum":
        return sum(sum(r) for r in rows) / len(rows)
    return sum(sum(r) / len(r) for r in rows) / len(rows)


def test_token_mean_hand_computed():
    """spec §7.3 P1: token-mean = sum of masked losses / number of masked tokens."""
    # masked tokens: 1, 2, 3 (row 0) and 4 (row 1): (1 + 2 + 3 + 4) / 4 = 2.5
    assert aggregate_loss(LOSS, MASK, "token-mean").item() == pytest.approx(2.5)


def test_seq_mean_token_sum_hand_computed():
    """spec §7.3 P1 (verl agg_loss): mean over non-empty rows of the per-row token sum."""
    # row sums: 1+2+3 = 6, 4; row 2 is all-masked and excluded: (6 + 4) / 2 = 5 (not / 3)
    assert aggregate_loss(LOSS, MASK, "seq-mean-token-sum").item() == pytest.approx(5.0)


def test_seq_mean_token_mean_hand_computed_excludes_empty_rows():
    """spec §7.3 P1 (verl agg_loss): all-zero-mask rows leave the seq mean, as in verl."""
    # row means: (1+2+3)/3 = 2, 4/1 = 4; row 2 excluded: (2 + 4) / 2 = 3 (including it: 2)
    assert aggregate_loss(LOSS, MASK, "seq-mean-token-mean").item() == pytest.approx(3.0)


@pytest.mark.parametrize("mode", sorted(AGG_MODES))
def test_modes_match_loop_on_random_inputs(mode):
    """spec §7.3 P1: each mode equals an explicit loop over rows and tokens."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        loss_mat = torch.randn(7, 11, generator=gen, dtype=torch.float64)
        lengths = torch.randint(0, 12, (7,), generator=gen)
        lengths[0] = 5  # at least one non-empty row
        loss_mask = torch.arange(11)[None, :] < lengths[:, None]  # (B, T)
        got = aggregate_loss(loss_mat, loss_mask, mode).item()
        assert got == pytest.approx(_aggregate_loop(loss_mat, loss_mask, mode), rel=1e-12)


@pytest.mark.parametrize("mode", sorted(AGG_MODES))
def test_float_mask_equals_bool_mask(mode):
    """spec §7.1 R2: a 0/1 float loss mask gives the same result as the bool mask."""
    got = aggregate_loss(LOSS, MASK.float(), mode)
    torch.testing.assert_close(got, aggregate_loss(LOSS, MASK, mode))


@pytest.mark.parametrize("mode", sorted(AGG_MODES))
def test_fully_masked_batch_gives_zero_loss_and_zero_grad(mode):
    """spec §7.1 R2: no selected token -> loss 0 with zero gradient (verl would return NaN)."""
    loss_mat = torch.ones(2, 3, requires_grad=True)
    loss = aggregate_loss(loss_mat, torch.zeros(2, 3, dtype=torch.bool), mode)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(loss_mat.grad, torch.zeros(2, 3))


def test_token_mean_gradient_hand_computed():
    """spec §7.3 P1: under token-mean each masked token's gradient is 1 / n_tokens = 1/4, else 0."""
    loss_mat = torch.zeros(3, 4, requires_grad=True)
    aggregate_loss(loss_mat, MASK, "token-mean").backward()
    torch.testing.assert_close(loss_mat.grad, MASK.float() / 4)


def test_masked_mean_and_sum_hand_computed():
    """spec §7.1 R2: masked reductions skip masked NaNs; float masks weight; empty mean is 0."""
    assert masked_sum(LOSS, MASK).item() == 10.0  # 1 + 2 + 3 + 4
    assert masked_mean(LOSS, MASK).item() == 2.5  # 10 / 4
    per_row = masked_mean(LOSS, MASK, dim=-1)
    # row 0: 6 / 3 = 2; row 1: 4 / 1 = 4; row 2: no token -> 0 (not NaN)
    assert per_row.tolist() == [2.0, 4.0, 0.0]
    weights = torch.tensor([0.5, 0.0, 1.5])
    # (0.5 * 2 + 1.5 * 6) / (0.5 + 1.5) = (1 + 9) / 2 = 5
    assert masked_mean(torch.tensor([2.0, NAN, 6.0]), weights).item() == 5.0
    assert not math.isnan(masked_mean(torch.tensor([NAN]), torch.tensor([False])).item())


def test_unknown_mode_lists_valid_modes():
    """spec §7.3 P1: an unknown aggregation mode raises and lists the valid ones."""
    with pytest.raises(ValueError, match=r"'token_mean'.*\['seq-mean-token-mean', "):
        aggregate_loss(LOSS, MASK, "token_mean")


def test_shape_mismatch_raises():
    """spec §7.3 P1: loss matrix and mask must both be (B, T)."""
    with pytest.raises(ValueError, match=r"got loss_mat \(3, 4\) and loss_mask \(3, 3\)"):
        aggregate_loss(LOSS, MASK[:, :3], "token-mean")
