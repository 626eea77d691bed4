"""Tests for rltrain/ops/logprobs.py: hand-computed softmax cases, chunking, loop reference."""

import math

import pytest
import torch

from rltrain.ops.logprobs import entropy_from_logits, token_logprobs, token_logprobs_and_entropy

LN2, LN3 = math.log(2.0), math.log(3.0)
# Row 0: logits [ln 1, ln 2, ln 3] -> softmax [1/6, 2/6, 3/6]. Row 1: uniform over 3.
LOGITS = torch.tensor([[[0.0, LN2, LN3], [5.0, 5.0, 5.0]]])  # (B=1, T=2, V=3)


def _logprob_loop(logits, labels):
    """Slow reference: log p = z_y - log(sum_v exp(z_v)) per position, Python floats."""
    out = torch.empty(labels.shape, dtype=torch.float64)
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1]):
            z = logits[b, t].tolist()
            out[b, t] = z[labels[b, t]] - math.log(sum(math.exp(v) for v in z))
    return out


def _entropy_loop(logits):
    """Slow reference: H = -sum_v p_v log p_v per position, Python floats."""
    out = torch.empty(logits.shape[:-1], dtype=torch.float64)
    for b in range(logits.shape[0]):
        for t in range(logits.shape[1]):
            z = logits[b, t].tolist()
            norm = sum(math.exp(v) for v in z)
            out[b, t] = -sum(math.exp(v) / norm * (v - math.log(norm)) for v in z)
    return out


def test_token_logprobs_hand_computed():
    """spec §7.3 P4: label log-prob: ln(3/6) = -0.6931472; uniform: ln(1/3) = -1.0986123."""
    got = token_logprobs(LOGITS, torch.tensor([[2, 0]]))
    torch.testing.assert_close(got, torch.tensor([[-0.6931472, -1.0986123]]))
    # label 0 of row 0: ln(1/6) = -1.7917595
    assert token_logprobs(LOGITS, torch.tensor([[0, 1]]))[0, 0].item() == pytest.approx(-1.7917595)


def test_entropy_hand_computed():
    """spec §7.3 P4: entropy H = -sum p ln p, worked out for two positions."""
    # H([1/6, 1/3, 1/2]) = ln6/6 + ln3/3 + ln2/2 = 0.2986266 + 0.3662041 + 0.3465736
    #                    = 1.0114043; uniform over 3: ln 3 = 1.0986123
    torch.testing.assert_close(entropy_from_logits(LOGITS), torch.tensor([[1.0114043, 1.0986123]]))


def test_large_logits_are_stable_in_float32():
    """spec §7.3 P4: a shift by 1e4 changes nothing (logsumexp, not exp then log)."""
    labels = torch.tensor([[2, 0]])
    torch.testing.assert_close(token_logprobs(LOGITS + 1e4, labels), token_logprobs(LOGITS, labels), atol=2e-3, rtol=0)
    assert torch.isfinite(entropy_from_logits(LOGITS + 1e4)).all()


@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
def test_match_loop_on_random_inputs_for_any_chunk_size(chunk_size):
    """spec §7.3 P4: both functions equal the scalar formulas; the chunk size is invisible."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 17, generator=gen, dtype=torch.float64) * 4
    labels = torch.randint(0, 17, (3, 5), generator=gen)
    got = token_logprobs(logits, labels, chunk_size=chunk_size)
    torch.testing.assert_close(got, _logprob_loop(logits, labels), rtol=1e-12, atol=1e-12)
    got_entropy = entropy_from_logits(logits, chunk_size=chunk_size)
    torch.testing.assert_close(got_entropy, _entropy_loop(logits), rtol=1e-12, atol=1e-12)


def test_half_precision_logits_give_float32():
    """spec §7.3 P4: bf16 logits are upcast per chunk; the result is float32 math on bf16 values."""
    gen = torch.Generator().manual_seed(1)
    logits = (torch.randn(2, 4, 11, generator=gen) * 3).to(torch.bfloat16)
    labels = torch.randint(0, 11, (2, 4), generator=gen)
    got = token_logprobs(logits, labels, chunk_size=3)
    assert got.dtype == torch.float32
    want = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels[..., None]).squeeze(-1)
    torch.testing.assert_close(got, want)
    assert entropy_from_logits(logits).dtype == torch.float32


def test_gradient_matches_log_softmax():
    """spec §7.3 P4: d logp_y / d z = onehot(y) - softmax(z), same as log_softmax + gather."""
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 7, (2, 3), generator=gen)
    (grad,) = torch.autograd.grad(token_logprobs(logits, labels, chunk_size=2).sum(), logits)
    expected = torch.nn.functional.one_hot(labels, 7).double() - torch.softmax(logits.detach(), dim=-1)
    torch.testing.assert_close(grad, expected)


def test_sliced_logits_and_empty_batches():
    """spec §7.3 P4: a shifted slice logits[:, :-1] (how the learner calls it) and B = 0 work."""
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 6, 9, generator=gen)
    ids = torch.randint(0, 9, (2, 6), generator=gen)
    sliced, labels = logits[:, :-1], ids[:, 1:]
    assert not sliced.is_contiguous()
    want = token_logprobs(sliced.contiguous(), labels, chunk_size=2)
    torch.testing.assert_close(token_logprobs(sliced, labels, chunk_size=2), want, rtol=0, atol=0)
    torch.testing.assert_close(entropy_from_logits(sliced), entropy_from_logits(sliced.contiguous()))
    assert token_logprobs(torch.zeros(0, 3, 5), torch.zeros(0, 3, dtype=torch.long)).shape == (0, 3)


def test_bad_inputs_raise():
    """spec §7.3 P4: labels must be logits.shape[:-1]; chunk_size must be positive."""
    with pytest.raises(ValueError, match=r"logits \(1, 2, 3\) and labels \(2,\)"):
        token_logprobs(LOGITS, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="chunk_size must be >= 1 token; got 0"):
        token_logprobs(LOGITS, torch.tensor([[0, 1]]), chunk_size=0)
    with pytest.raises(ValueError, match=r"logits \(B, T, V\); got \(3,\)"):
        entropy_from_logits(torch.zeros(3))


def _reference(logits, labels, temperature=1.0):
    """Unfused autograd reference: log_softmax over float32 logits / T, then gather."""
    z = logits.float() / temperature if logits.dtype != torch.float64 else logits / temperature
    return torch.log_softmax(z, dim=-1).gather(-1, labels[..., None]).squeeze(-1)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_fused_logprobs_entropy_and_gradient_match_unfused(temperature):
    """spec §7.3 P4: one pass gives log pi(y) of softmax(z / T) and its entropy; the chunked, recomputing
    backward gives autograd's gradient (d logp_y / dz = (onehot - softmax(z / T)) / T)."""
    gen = torch.Generator().manual_seed(4)
    logits = (torch.randn(2, 5, 13, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    labels = torch.randint(0, 13, (2, 5), generator=gen)
    weights = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    got, entropy = token_logprobs_and_entropy(logits, labels, temperature=temperature, chunk_size=2)
    want = _reference(logits, labels, temperature)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(entropy, entropy_from_logits(logits.detach() / temperature), rtol=1e-12, atol=1e-12)
    assert not entropy.requires_grad
    (grad,) = torch.autograd.grad((got * weights).sum(), logits)
    (want_grad,) = torch.autograd.grad((want * weights).sum(), logits)
    torch.testing.assert_close(grad, want_grad, rtol=1e-12, atol=1e-12)
    assert token_logprobs_and_entropy(logits, labels, with_entropy=False)[1] is None


def test_fused_gradient_on_bf16_logits():
    """spec §7.3 P4: bf16 logits (the learner's under autocast) get a bf16 gradient equal to autograd's
    through a float32 upcast, up to the final rounding to bf16."""
    gen = torch.Generator().manual_seed(5)
    logits = (torch.randn(3, 4, 50, generator=gen) * 4).to(torch.bfloat16).requires_grad_()
    labels = torch.randint(0, 50, (3, 4), generator=gen)
    (grad,) = torch.autograd.grad(token_logprobs(logits, labels, chunk_size=3).sum(), logits)
    (want,) = torch.autograd.grad(_reference(logits, labels).sum(), logits)
    assert grad.dtype == torch.bfloat16
    torch.testing.assert_close(grad, want)


def test_backward_keeps_no_float32_copy_of_bf16_logits():
    """spec §7.3 P4 memory: between forward and backward only the logits themselves and (B, T) vectors are kept,
    not a float32 copy of each chunk (which an unfused upcast-then-logsumexp keeps: 2x the bf16 logits' bytes)."""
    gen = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 8, 64, generator=gen).to(torch.bfloat16).requires_grad_()
    labels = torch.randint(0, 64, (2, 8), generator=gen)
    saved: list[torch.Tensor] = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        token_logprobs_and_entropy(logits, labels, chunk_size=4)[0].sum().backward()
    big = [t for t in saved if t.numel() >= 4 * 64 and t.data_ptr() != logits.data_ptr()]
    assert big == [], [(t.dtype, tuple(t.shape)) for t in big]


def test_fused_bad_temperature_raises():
    with pytest.raises(ValueError, match="temperature must be > 0; got 0"):
        token_logprobs_and_entropy(LOGITS, torch.tensor([[0, 1]]), temperature=0.0)
