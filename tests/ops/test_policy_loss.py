"""Tests for rltrain/ops/policy_loss.py: a hand-computed PPO-clip batch and a loop reference."""

import math

import pytest
import torch

from rltrain.ops.aggregate import AGG_MODES
from rltrain.ops.policy_loss import ppo_clip_loss

# Hand case: old_logprobs = 0, so ratio r = exp(policy_logprobs). clip_low 0.2, clip_high 0.28.
RATIOS = torch.tensor([[1.5, 0.5, 0.5, 10.0], [5.0, 1.0, 10.0, 1.0]])
ADVANTAGES = torch.tensor([[1.0, 1.0, -1.0, 1.0], [-1.0, -2.0, -1.0, 0.0]])
LOSS_MASK = torch.tensor([[True, True, True, False], [True, True, False, False]])
# Per unmasked token, l_ppo = max(-A r, -A clamp(r, 0.8, 1.28)), dual bound -A c with c = 3:
#   t1 A=+1 r=1.5: max(-1.5, -1.28) = -1.28  clipped (-1.28 > -1.5)
#   t2 A=+1 r=0.5: max(-0.5, -0.8)  = -0.5   not clipped
#   t3 A=-1 r=0.5: max(0.5, 0.8)    = 0.8    clipped; dual: min(0.8, 3) = 0.8
#   t4 A=-1 r=5:   max(5, 1.28)     = 5      not clipped; dual: min(5, 3) = 3 (dual-clipped)
#   t5 A=-2 r=1:   max(2, 2)        = 2      not clipped (equal); dual: min(2, 6) = 2
# row 0 = t1..t3 (+ 1 masked), row 1 = t4, t5 (+ 2 masked)
CLIP_LOW, CLIP_HIGH, DUAL_C = 0.2, 0.28, 3.0


def _hand_inputs():
    policy_logprobs = RATIOS.log().requires_grad_(True)
    return policy_logprobs, torch.zeros_like(RATIOS), ADVANTAGES, LOSS_MASK


def _ppo_loop(policy_logprobs, old_logprobs, advantages, loss_mask, clip_low, clip_high, c, mode):
    """Slow reference: per-token scalar PPO-clip, then rows of kept tokens, then the mode."""
    rows, n_tok, n_clip, n_dual, kl_sum = [], 0, 0, 0, 0.0
    for b in range(policy_logprobs.shape[0]):
        row = []
        for t in range(policy_logprobs.shape[1]):
            if not loss_mask[b, t]:
                continue
            log_r = min(max(policy_logprobs[b, t].item() - old_logprobs[b, t].item(), -20.0), 20.0)
            r, a = math.exp(log_r), advantages[b, t].item()
            unclipped, clipped = -a * r, -a * min(max(r, 1 - clip_low), 1 + clip_high)
            loss = max(unclipped, clipped)
            n_clip += clipped > unclipped
            if c is not None and a < 0:
                n_dual += loss > -a * c
                loss = min(loss, -a * c)
            row.append(loss)
            n_tok += 1
            kl_sum -= log_r
        if row:
            rows.append(row)
    if mode == "token-mean":
        value = sum(sum(r) for r in rows) / n_tok
    elif mode == "seq-mean-token-sum":
        value = sum(sum(r) for r in rows) / len(rows)
    else:
        value = sum(sum(r) / len(r) for r in rows) / len(rows)
    return value, n_clip / n_tok, n_dual / n_tok, kl_sum / n_tok


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("token-mean", 0.804),  # (-1.28 - 0.5 + 0.8 + 3 + 2) / 5 = 4.02 / 5
        ("seq-mean-token-sum", 2.01),  # row sums -0.98 and 5: 4.02 / 2
        ("seq-mean-token-mean", 1.0866667),  # row means -0.98/3 = -0.3266667 and 5/2: 2.1733333 / 2
    ],
)
def test_hand_computed_loss(mode, expected):
    """spec §7.3 P1: asymmetric clip (0.2 / 0.28) and dual clip c = 3 on a worked batch."""
    loss, _ = ppo_clip_loss(*_hand_inputs(), CLIP_LOW, CLIP_HIGH, DUAL_C, mode)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_hand_computed_metrics():
    """spec §7.3 P1: clip_frac (verl pg_clipfrac), clip_frac_lower (dual), approx_kl (ppo_kl)."""
    _, metrics = ppo_clip_loss(*_hand_inputs(), CLIP_LOW, CLIP_HIGH, DUAL_C, "token-mean")
    assert set(metrics) == {"clip_frac", "clip_frac_lower", "approx_kl"}
    assert metrics["clip_frac"].item() == pytest.approx(0.4)  # t1, t3 of 5 tokens
    assert metrics["clip_frac_lower"].item() == pytest.approx(0.2)  # t4 of 5 tokens
    # approx_kl = mean(-log r) = -(ln 1.5 + ln 0.5 + ln 0.5 + ln 5 + ln 1) / 5
    #           = -(0.4054651 - 0.6931472 - 0.6931472 + 1.6094379 + 0) / 5 = -0.1257217
    assert metrics["approx_kl"].item() == pytest.approx(-0.1257217, abs=1e-6)
    assert all(not m.requires_grad and m.dim() == 0 for m in metrics.values())


def test_hand_computed_gradient():
    """spec §7.3 P1: only unclipped tokens carry gradient, d l / d log r = -A r, / 5 tokens."""
    policy_logprobs, *rest = _hand_inputs()
    loss, _ = ppo_clip_loss(policy_logprobs, *rest, CLIP_LOW, CLIP_HIGH, DUAL_C, "token-mean")
    loss.backward()
    # t2: -(+1)(0.5) / 5 = -0.1;  t5: -(-2)(1) / 5 = 0.4;  t1, t3 clipped, t4 dual-clipped: 0
    expected = torch.tensor([[0.0, -0.1, 0.0, 0.0], [0.0, 0.4, 0.0, 0.0]])
    torch.testing.assert_close(policy_logprobs.grad, expected)


def test_hand_computed_without_dual_clip():
    """spec §7.3 P1: dual_clip_c=None leaves t4 at its PPO loss 5 and clip_frac_lower at 0."""
    policy_logprobs, *rest = _hand_inputs()
    loss, metrics = ppo_clip_loss(policy_logprobs, *rest, CLIP_LOW, CLIP_HIGH, None, "token-mean")
    # (-1.28 - 0.5 + 0.8 + 5 + 2) / 5 = 6.02 / 5 = 1.204
    assert loss.item() == pytest.approx(1.204, abs=1e-6)
    assert metrics["clip_frac_lower"].item() == 0.0
    loss.backward()
    # t4 now unclipped: -(-1)(5) / 5 = 1.0
    assert policy_logprobs.grad[1, 0].item() == pytest.approx(1.0)


def test_dual_clip_only_binds_for_negative_advantages():
    """spec §7.3 P1: a positive-advantage token with a huge ratio is PPO-clipped, never dual."""
    # A = +1, r = e^3 = 20.09: max(-20.09, -1.28) = -1.28; dual bound -A c = -3 is never applied
    loss, metrics = ppo_clip_loss(
        torch.tensor([[3.0]]),
        torch.zeros(1, 1),
        torch.ones(1, 1),
        torch.ones(1, 1, dtype=torch.bool),
        0.2,
        0.28,
        3.0,
        "token-mean",
    )
    assert loss.item() == pytest.approx(-1.28)
    assert metrics["clip_frac_lower"].item() == 0.0


def test_log_ratio_is_clamped_to_20_like_verl():
    """spec §7.3 P1: verl clamps the log-ratio to [-20, 20]; r = e^20, approx_kl = -20, not -30."""
    loss, metrics = ppo_clip_loss(
        torch.tensor([[30.0]]),
        torch.zeros(1, 1),
        -torch.ones(1, 1),
        torch.ones(1, 1, dtype=torch.bool),
        0.2,
        0.2,
        None,
        "token-mean",
    )
    # A = -1: max(e^20, 1.2) = e^20 = 4.8516520e8 (e^30 = 1.07e13 without the clamp)
    assert loss.item() == pytest.approx(math.exp(20.0), rel=1e-6)
    assert metrics["approx_kl"].item() == pytest.approx(-20.0)


@pytest.mark.parametrize("mode", sorted(AGG_MODES))
@pytest.mark.parametrize(("clip_low", "clip_high", "dual_c"), [(0.2, 0.2, None), (0.2, 0.28, 3.0), (0.1, 0.3, 10.0)])
def test_matches_loop_on_random_inputs(mode, clip_low, clip_high, dual_c):
    """spec §7.3 P1: loss and all metrics equal a per-token loop for every mode and clip setting."""
    gen = torch.Generator().manual_seed(0)
    old_logprobs = -torch.rand(6, 10, generator=gen, dtype=torch.float64) * 5
    policy_logprobs = old_logprobs + torch.randn(6, 10, generator=gen, dtype=torch.float64) * 0.5
    advantages = torch.randn(6, 10, generator=gen, dtype=torch.float64)
    lengths = torch.tensor([10, 0, 3, 7, 1, 5])
    loss_mask = torch.arange(10)[None, :] < lengths[:, None]  # (B, T)
    loss, metrics = ppo_clip_loss(policy_logprobs, old_logprobs, advantages, loss_mask, clip_low, clip_high, dual_c, mode)
    want = _ppo_loop(policy_logprobs, old_logprobs, advantages, loss_mask, clip_low, clip_high, dual_c, mode)
    got = (
        loss.item(),
        metrics["clip_frac"].item(),
        metrics["clip_frac_lower"].item(),
        metrics["approx_kl"].item(),
    )
    assert got == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert 0.0 < want[1] < 1.0  # the random batch really exercises clipping


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dual_clip_c": 1.0}, r"dual_clip_c must be > 1.*got 1.0.*None to turn dual clipping off"),
        ({"dual_clip_c": 0.5}, r"dual_clip_c must be > 1.*got 0.5"),
        ({"clip_low": 1.0}, r"clip_low must be in \[0, 1\).*got 1.0"),
        ({"clip_low": -0.1}, r"clip_low must be in \[0, 1\).*got -0.1"),
        ({"clip_high": -0.1}, r"clip_high must be >= 0; got -0.1"),
        ({"agg_mode": "mean"}, r"Unknown loss aggregation mode 'mean'; valid modes are \["),
    ],
)
def test_bad_params_raise(kwargs, message):
    """spec §7.3 P1: bad clip settings and unknown modes raise a ValueError naming the fix."""
    params = {
        "clip_low": 0.2,
        "clip_high": 0.28,
        "dual_clip_c": 3.0,
        "agg_mode": "token-mean",
    } | kwargs
    with pytest.raises(ValueError, match=message):
        ppo_clip_loss(*_hand_inputs(), **params)


def test_shape_mismatch_raises():
    """spec §7.3 P1: all four per-token inputs must share one (B, T) shape."""
    policy_logprobs, old_logprobs, advantages, loss_mask = _hand_inputs()
    with pytest.raises(ValueError, match=r"one shape \(B, T\); got \(2, 4\), \(2, 4\), \(2, 1\)"):
        ppo_clip_loss(
            policy_logprobs,
            old_logprobs,
            advantages[:, :1],
            loss_mask,
            0.2,
            0.2,
            None,
            "token-mean",
        )
