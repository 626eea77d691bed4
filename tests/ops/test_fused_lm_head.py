"""Tests for rltrain/ops/fused_lm_head.py: the fused LM head equals the plain logits path (spec §7.3 P4).

The plain path is the learner's today: logits = lm_head(hidden), then `token_logprobs_and_entropy` (and the
autograd-differentiable `entropy_from_logits` for an entropy term). Equality is checked in float32 to 1e-5,
for values and for the gradients w.r.t. the hidden states and the head weight (tied to the embeddings too).
"""

import math

import pytest
import torch

from rltrain.ops.fused_lm_head import NO_LOGITS, fused_token_logprobs, lm_head_weight
from rltrain.ops.logprobs import entropy_from_logits, token_logprobs_and_entropy

TOL = {"atol": 1e-5, "rtol": 1e-5}


def test_hand_computed():
    """logits [0, ln 2, ln 3] -> softmax [1/6, 2/6, 3/6]: log p_2 = ln(1/2); H = ln 6 - (2 ln 2 + 3 ln 3) / 6."""
    hidden = torch.tensor([[1.0, 0.0]])
    weight = torch.tensor([[0.0, 0.0], [math.log(2.0), 0.0], [math.log(3.0), 0.0]])
    logprobs, entropy = fused_token_logprobs(hidden, weight, torch.tensor([2]), with_entropy=True)
    torch.testing.assert_close(logprobs, torch.tensor([math.log(0.5)]))
    torch.testing.assert_close(entropy, torch.tensor([math.log(6.0) - (2 * math.log(2.0) + 3 * math.log(3.0)) / 6]))


def _plain(hidden, weight, labels, temperature):
    logits = hidden @ weight.T
    logprobs, _ = token_logprobs_and_entropy(logits, labels, temperature=temperature, with_entropy=False)
    return logprobs, entropy_from_logits(logits / temperature)


@pytest.mark.parametrize(("chunk", "temperature"), [(1, 1.0), (3, 0.7), (4096, 1.3)])
def test_values_and_gradients_equal_plain(chunk, temperature):
    """Log-probs, entropy and d(loss)/d(hidden, weight) match the plain path, with masked positions in the loss."""
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 7, 16, generator=gen)
    weight = torch.randn(50, 16, generator=gen) * 0.5
    labels = torch.randint(0, 50, (2, 7), generator=gen)
    mask = torch.rand(2, 7, generator=gen) > 0.4
    adv, coef = torch.randn(2, 7, generator=gen), torch.randn(2, 7, generator=gen)
    results = []
    for fused in (False, True):
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        if fused:
            lp, ent = fused_token_logprobs(h, w, labels, temperature=temperature, with_entropy=True, chunk_size=chunk)
        else:
            lp, ent = _plain(h, w, labels, temperature)
        ((lp * adv + ent * coef) * mask).sum().backward()
        results.append((lp.detach(), ent.detach(), h.grad, w.grad))
    for plain, fused in zip(*results):
        torch.testing.assert_close(fused, plain, **TOL)
    assert results[1][2][~mask].abs().max() == 0  # masked positions get no gradient


def test_positions_skip_tokens_exactly():
    """Computing only at `positions` gives the full result there, 0 elsewhere, and the same gradients."""
    gen = torch.Generator().manual_seed(1)
    hidden, weight = torch.randn(3, 5, 8, generator=gen), torch.randn(20, 8, generator=gen)
    labels = torch.randint(0, 20, (3, 5), generator=gen)
    mask = torch.rand(3, 5, generator=gen) > 0.5
    grads = []
    for positions in (None, mask):
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        lp, _ = fused_token_logprobs(h, w, labels, positions=positions, chunk_size=4)
        (lp * mask).sum().backward()
        grads.append((lp.detach() * mask, h.grad, w.grad))
        if positions is not None:
            assert lp.detach()[~mask].abs().max() == 0
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, **TOL)


def _tiny_llama(tied: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, max_position_embeddings=64, tie_word_embeddings=tied)
    return LlamaForCausalLM(config).float()


@pytest.mark.parametrize("tied", [True, False])
def test_tiny_model_gradients_equal_plain(tied):
    """Whole-model parameter gradients of a masked PPO-like loss: fused head == plain logits, fp32, 1e-5 (tied too)."""
    model = _tiny_llama(tied)
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(0, 96, (2, 9), generator=gen)
    labels = ids.roll(-1, dims=1)  # the learner's alignment (actors/learner.py `_logprobs`)
    mask = torch.rand(2, 9, generator=gen) > 0.3
    adv = torch.randn(2, 9, generator=gen)
    results = []
    for fused in (False, True):
        model.zero_grad()
        if fused:
            out = model(input_ids=ids, use_cache=False, logits_to_keep=NO_LOGITS, output_hidden_states=True)
            assert out.logits.numel() == 0  # the full logits are never formed
            lp, _ = fused_token_logprobs(out.hidden_states[-1], lm_head_weight(model), labels, temperature=0.9)
        else:
            lp, _ = token_logprobs_and_entropy(model(input_ids=ids, use_cache=False).logits, labels, temperature=0.9,
                                               with_entropy=False)
        (lp * adv * mask).sum().backward()
        results.append((lp.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    torch.testing.assert_close(results[1][0], results[0][0], **TOL)
    for name, grad in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], grad, **TOL, msg=lambda m, n=name: f"{n}: {m}")
    if tied:
        assert lm_head_weight(model) is model.get_input_embeddings().weight


def test_autocast_matches_plain_autocast():
    """Under bf16 autocast the head matmul runs in bf16 as nn.Linear's does: same log-probs to bf16 rounding."""
    gen = torch.Generator().manual_seed(3)
    hidden, weight = torch.randn(6, 16, generator=gen), torch.randn(40, 16, generator=gen)
    labels = torch.randint(0, 40, (6,), generator=gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain, _ = token_logprobs_and_entropy(torch.nn.functional.linear(hidden, weight)[None], labels[None],
                                              with_entropy=False)
        h = hidden.clone().requires_grad_()
        fused, _ = fused_token_logprobs(h, weight, labels)
    torch.testing.assert_close(fused, plain[0], atol=0.0, rtol=0.0)  # same bf16 logits, same fp32 math
    fused.sum().backward()
    assert h.grad.dtype == torch.float32


def test_lora_model_head_and_errors():
    """peft: the base head is found through the wrapper; a LoRA-wrapped lm_head is refused with a fix."""
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(_tiny_llama(False), peft.LoraConfig(r=2, target_modules=["q_proj"]))
    assert lm_head_weight(model) is model.get_base_model().lm_head.weight
    ids = torch.randint(0, 96, (2, 6), generator=torch.Generator().manual_seed(4))
    hidden = model(input_ids=ids, use_cache=False, logits_to_keep=NO_LOGITS, output_hidden_states=True).hidden_states[-1]
    fused, _ = fused_token_logprobs(hidden, lm_head_weight(model), ids.roll(-1, dims=1))
    plain = torch.log_softmax(model(input_ids=ids).logits, dim=-1).gather(-1, ids.roll(-1, dims=1)[..., None])[..., 0]
    torch.testing.assert_close(fused, plain, **TOL)  # the LoRA layers stay in the forward that gives `hidden`
    wrapped = peft.get_peft_model(_tiny_llama(False), peft.LoraConfig(r=2, target_modules=["lm_head"]))
    with pytest.raises(ValueError, match="target_modules"):
        lm_head_weight(wrapped)
    with pytest.raises(ValueError, match="temperature"):
        fused_token_logprobs(torch.zeros(2, 4), torch.zeros(3, 4), torch.zeros(2, dtype=torch.long), temperature=0)
    with pytest.raises(ValueError, match="expects hidden"):
        fused_token_logprobs(torch.zeros(2, 4), torch.zeros(3, 5), torch.zeros(2, dtype=torch.long))
