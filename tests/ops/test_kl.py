"""Tests for rltrain/ops/kl.py: hand-computed estimators, verl's clamps, loop reference."""

import math

import pytest
import torch

from rltrain.ops.kl import KL_ESTIMATORS, kl_penalty

POLICY = torch.tensor([[-1.0, -2.0]])
REF = torch.tensor([[-1.5, -1.0]])


def _kl_loop(policy_logprobs, ref_logprobs, estimator):
    """Slow reference: the estimator formula per element with Python floats."""
    out = torch.empty_like(policy_logprobs)
    for idx in range(policy_logprobs.numel()):
        p = policy_logprobs.view(-1)[idx].item()
        r = ref_logprobs.view(-1)[idx].item()
        if estimator == "k1":
            v = p - r
        elif estimator == "k2":
            v = 0.5 * (p - r) ** 2
        else:
            x = min(max(r - p, -20.0), 20.0)
            v = min(max(math.exp(x) - x - 1.0, -10.0), 10.0)
        out.view(-1)[idx] = v
    return out


def test_k1_hand_computed():
    """spec §7.3 P2: k1 = logp - ref: [-1 - (-1.5), -2 - (-1)] = [0.5, -1.0]."""
    torch.testing.assert_close(kl_penalty(POLICY, REF, "k1"), torch.tensor([[0.5, -1.0]]))


def test_k2_hand_computed():
    """spec §7.3 P2: k2 = 0.5 (logp - ref)^2: [0.5 * 0.25, 0.5 * 1] = [0.125, 0.5]."""
    torch.testing.assert_close(kl_penalty(POLICY, REF, "k2"), torch.tensor([[0.125, 0.5]]))


@pytest.mark.parametrize("estimator", ["k3", "low_var_kl"])
def test_k3_hand_computed(estimator):
    """spec §7.3 P2 (low_var_kl): x = ref - logp; exp(x) - x - 1."""
    # x = [-1.5 - (-1), -1 - (-2)] = [-0.5, 1.0]
    # exp(-0.5) + 0.5 - 1 = 0.6065307 - 0.5 = 0.1065307;  exp(1) - 1 - 1 = 0.7182818
    torch.testing.assert_close(kl_penalty(POLICY, REF, estimator), torch.tensor([[0.1065307, 0.7182818]]))


def test_k3_clamps_like_verl():
    """spec §7.3 P2: verl clamps x to [-20, 20] and the k3 value to [-10, 10]."""
    policy = torch.tensor([[-15.0, 0.0, -1.0, 0.0]])
    ref = torch.tensor([[-1.0, -30.0, -3.0, -10.5]])
    # x = 14:  exp(14) - 15 = 1.2e6          -> clamped to 10
    # x = -30: clamped to -20: exp(-20) + 19 = 19.0 -> clamped to 10
    # x = -2:  exp(-2) + 2 - 1 = 1.1353353   (inside both bounds)
    # x = -10.5: exp(-10.5) + 9.5 = 9.5000275 (just inside the upper bound)
    expected = torch.tensor([[10.0, 10.0, 1.1353353, 9.5000275]])
    torch.testing.assert_close(kl_penalty(policy, ref, "k3"), expected)


def test_k3_log_ratio_clamp_keeps_gradient_finite():
    """spec §7.3 P2: without verl's [-20, 20] clamp, x = 100 gives exp = inf and a NaN gradient."""
    policy = torch.tensor([[-100.0, -1.0]], requires_grad=True)
    ref = torch.tensor([[0.0, -1.5]])
    kl_penalty(policy, ref, "k3").sum().backward()
    # token 0 is clamped (zero gradient); token 1: d/dp [exp(r - p) - (r - p) - 1]
    #   = -exp(x) + 1 with x = -0.5: 1 - 0.6065307 = 0.3934693
    torch.testing.assert_close(policy.grad, torch.tensor([[0.0, 0.3934693]]))


@pytest.mark.parametrize("estimator", sorted(KL_ESTIMATORS))
def test_estimators_match_loop(estimator):
    """spec §7.3 P2: each estimator equals its scalar formula on random inputs, incl. clamps."""
    gen = torch.Generator().manual_seed(0)
    policy = -torch.rand(6, 9, generator=gen, dtype=torch.float64) * 30
    ref = -torch.rand(6, 9, generator=gen, dtype=torch.float64) * 30
    got = kl_penalty(policy, ref, estimator)
    torch.testing.assert_close(got, _kl_loop(policy, ref, estimator), rtol=1e-12, atol=1e-12)


def test_unknown_estimator_lists_valid_names():
    """spec §7.3 P2: an unknown name raises and lists every valid estimator."""
    with pytest.raises(ValueError, match=r"'k4'.*\['k1', 'k2', 'k3', 'low_var_kl'\]"):
        kl_penalty(POLICY, REF, "k4")


def test_shape_mismatch_raises():
    """spec §7.3 P2: policy and reference log-probs must align token for token."""
    with pytest.raises(ValueError, match=r"same shape; got \(1, 2\) and \(2,\)"):
        kl_penalty(POLICY, REF[0], "k1")
