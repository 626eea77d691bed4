"""The adaptation vector's math (spec §5.1): gradient vs autograd, Adam vs reference loops, sessions, masks."""

from __future__ import annotations

import pytest
import torch

from rltrain.adapt.masking import ChatMarkers, loss_mask, user_token_mask
from rltrain.adapt.sessions import SessionStore
from rltrain.adapt.vector import AdaptConfig, AdaptState, adam_update, adapt_step, delta_loss_and_grad


def _tiny_hidden(tiny_model, n_tokens: int = 24):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    ids = torch.arange(100, 100 + n_tokens)[None]
    with torch.no_grad():
        hidden = model.model(input_ids=ids).last_hidden_state[0]  # final normed hidden states (T, d)
    return model.get_output_embeddings().weight.detach(), hidden, ids[0]


def _autograd(head, hidden, ids, mask, delta, quirk: bool):
    d = delta.clone().requires_grad_(True)
    logits = (hidden[:-1] + d) @ head.T
    logp = torch.log_softmax(logits, -1)
    nll = -logp.gather(1, ids[1:, None]).squeeze(1)
    loss = (nll * mask).sum() / mask.sum()
    objective = loss
    if quirk:  # the reference's gradient = grad of loss + Σ_masked logsumexp(z_t) / N (spec §5.1 "Quirk")
        objective = loss + (torch.logsumexp(logits, -1) * (1 - mask)).sum() / mask.sum()
    objective.backward()
    return float(loss.detach()), d.grad


@pytest.mark.parametrize("softmax_mask", ["exact", "reference"])
def test_delta_gradient_matches_autograd_on_tiny_model(tiny_model, softmax_mask):
    """§5.1: dL/dδ = W_U^T Σ_t m_t(softmax − onehot)/N, analytic, equals autograd (exact); the quirk adds softmax·W_U
    of masked positions, which equals the autograd of the loss plus their logsumexp."""
    head, hidden, ids = _tiny_hidden(tiny_model)
    torch.manual_seed(1)
    delta = 0.05 * torch.randn(head.shape[1])
    mask = torch.ones(len(ids) - 1)
    mask[3:9] = 0
    loss, grad = delta_loss_and_grad(hidden[:-1], head, ids[1:], mask, delta, softmax_mask, chunk=5)
    ref_loss, ref_grad = _autograd(head, hidden, ids, mask, delta, quirk=softmax_mask == "reference")
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-6)


def test_exact_and_reference_masking_differ_only_with_a_mask(tiny_model):
    head, hidden, ids = _tiny_hidden(tiny_model, 12)
    delta = torch.zeros(head.shape[1])
    full = torch.ones(11)
    g_exact = delta_loss_and_grad(hidden[:-1], head, ids[1:], full, delta, "exact")[1]
    g_ref = delta_loss_and_grad(hidden[:-1], head, ids[1:], full, delta, "reference")[1]
    torch.testing.assert_close(g_exact, g_ref)
    full[2] = 0
    g_exact = delta_loss_and_grad(hidden[:-1], head, ids[1:], full, delta, "exact")[1]
    g_ref = delta_loss_and_grad(hidden[:-1], head, ids[1:], full, delta, "reference")[1]
    assert not torch.allclose(g_exact, g_ref)


def test_adam_update_matches_torch_adamw_and_a_hand_loop():
    """§5.1: Adam β1 0.9, β2 0.95, eps 1e-6, bias correction, δ ← δ − lr·m̂/(√v̂+eps) − lr·1e-5·δ."""
    cfg = AdaptConfig(lr=0.1)
    torch.manual_seed(0)
    grads = [torch.randn(8) for _ in range(5)]
    state = AdaptState.zeros(8)
    state.delta += 0.3  # non-zero so that weight decay shows
    param = torch.nn.Parameter(state.delta.clone())
    opt = torch.optim.AdamW([param], lr=0.1, betas=(0.9, 0.95), eps=1e-6, weight_decay=1e-5)
    delta, m, v = state.delta.clone().double(), torch.zeros(8).double(), torch.zeros(8).double()
    for t, g in enumerate(grads, start=1):
        adam_update(state, g, cfg)
        param.grad = g.clone()
        opt.step()
        gd = g.double()
        m = 0.9 * m + 0.1 * gd
        v = 0.95 * v + 0.05 * gd * gd
        m_hat, v_hat = m / (1 - 0.9 ** t), v / (1 - 0.95 ** t)
        delta = delta - 0.1 * m_hat / (v_hat.sqrt() + 1e-6) - 0.1 * 1e-5 * delta
    torch.testing.assert_close(state.delta, param.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(state.delta.double(), delta, rtol=1e-5, atol=1e-6)
    assert state.t == 5


def test_first_adam_step_moves_every_coordinate_by_lr():
    """Hand value: after one bias-corrected step from δ=0, m̂ = g and v̂ = g², so each |Δδ_i| = lr·|g|/(|g|+eps) ≈ lr."""
    state = AdaptState.zeros(3)
    adam_update(state, torch.tensor([2.0, -0.5, 1e-3]), AdaptConfig(lr=0.1))
    torch.testing.assert_close(state.delta, torch.tensor([-0.1 * 2 / (2 + 1e-6), 0.1 * 0.5 / (0.5 + 1e-6),
                                                         -0.1 * 1e-3 / (1e-3 + 1e-6)]))


def test_adapt_step_lowers_the_prompt_loss_and_reset_zeroes(tiny_model):
    head, hidden, ids = _tiny_hidden(tiny_model)
    state = AdaptState.zeros(head.shape[1])
    cfg = AdaptConfig(lr=0.05, steps=4)
    adapt_step(state, hidden[:-1], head, ids[1:], None, cfg)
    assert state.t == 4 and state.prefills == 1 and state.losses[-1] < state.losses[0]
    state.reset()
    assert float(state.delta.abs().sum()) == 0.0 and state.t == 0 and state.summary()["prefills"] == 0


def test_session_store_ttl_and_lru_eviction():
    now = [0.0]
    store = SessionStore(4, ttl_s=10, max_sessions=2, clock=lambda: now[0])
    store.get("a").delta += 1
    now[0] = 1
    store.get("b")
    now[0] = 2
    assert float(store.get("a").delta.sum()) == 4.0  # touched: "b" is now least recently used
    store.get("c")
    assert "b" not in store and "a" in store and store.evicted == 1
    now[0] = 12.5  # "a" last used at 2, "c" at 2: both idle > 10 s
    assert "a" not in store and store.expired == 2
    assert float(store.get("a").delta.sum()) == 0.0  # an expired session restarts at δ = 0
    assert store.reset("a") and not store.reset("zzz")


def test_user_segments_are_masked_in_chatml(embedded_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(embedded_model)
    markers = ChatMarkers.from_tokenizer(tok)
    text = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\nhi<|im_end|>\n"
    ids = tok.encode(text, add_special_tokens=False)
    in_user = user_token_mask(ids, markers)
    user_text = tok.decode([t for t, u in zip(ids, in_user) if u])
    assert user_text == "<|im_start|>user\nhello there<|im_end|>"
    mask = loss_mask(ids, markers)
    assert len(mask) == len(ids) - 1
    assert [m for t, m in enumerate(mask) if in_user[t + 1]] == [0.0] * sum(in_user)
    assert sum(mask) == len(ids) - 1 - sum(in_user)
