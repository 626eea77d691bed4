"""The learner's math without Ray or DeepSpeed (actors/learner.py): the lr schedule it hands DeepSpeed, packed rows,
and the fused LM head, on a tiny Llama built from a config (fp32, 1e-5).

- lr: linear warmup then cosine decay to `min_lr_ratio`, as Hugging Face's get_cosine_schedule_with_warmup (spec
  §1.9, UserRL's cold start "lr 1e-5 cosine, warmup_ratio 0.1"; formula in docs/sft.md "Training"), checked against
  values computed here by hand.
- packing (issues 15 and 19, docs/sft.md "Packing"): each sample of a packed row gets the log-probs, loss and
  gradients it gets in a padded batch.
- fused head (issue 19, spec §7.3 P4 token log-probs, docs/performance.md): the same log-probs, entropy and
  gradients as the logits path.
"""

from __future__ import annotations

import logging
import math

import pytest
import torch

from actors.learner import Learner, lr_scheduler_factory, token_logprobs_of
from rltrain.algorithms.base import LossInputs
from rltrain.algorithms.sft import SFT, packed_batch, samples_to_batch
from rltrain.config.learner import LearnerConfig
from rltrain.config.loader import ConfigError
from rltrain.data.sft import SFTSample
from rltrain.types import TrainBatch

CPU = torch.device("cpu")
VOCAB = 97


# ---------------------------------------------------------------- lr schedule


def _lrs(cfg: LearnerConfig, steps: int, optimizer: torch.optim.Optimizer | None = None,
         scheduler: torch.optim.lr_scheduler.LRScheduler | None = None) -> list[float]:
    """The lr each of `steps` optimizer steps runs at, stepping the scheduler after each as DeepSpeed does."""
    if optimizer is None:
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=cfg.lr)
        scheduler = lr_scheduler_factory(cfg)(optimizer)
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_cosine_lr_by_hand():
    cfg = LearnerConfig(lr=1e-5, warmup_steps=2, lr_schedule="cosine", total_steps=10, min_lr_ratio=0.1)
    # warmup: 0, 1/2 of the peak; then 0.1 + 0.9 * (1 + cos(pi * k / 8)) / 2 for k = 0..7 steps after warmup
    cos = [1.0, 0.9619397662556434, 0.8535533905932737, 0.6913417161825449, 0.5, 0.30865828381745514,
           0.14644660940672627, 0.038060233744356624]  # (1 + cos(pi k / 8)) / 2, k = 0..7
    expected = [0.0, 0.5e-5] + [1e-5 * (0.1 + 0.9 * c) for c in cos]
    assert _lrs(cfg, 10) == pytest.approx(expected, rel=1e-12, abs=1e-18)
    assert expected[6] == pytest.approx(1e-5 * (0.1 + 0.9 * 0.5))  # the decay's midpoint is halfway to the floor


def test_linear_lr_by_hand():
    cfg = LearnerConfig(lr=1.0, lr_schedule="linear", total_steps=4)
    assert _lrs(cfg, 5) == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])  # step 4: past the end, held at the floor


def test_constant_keeps_deepspeeds_warmup():
    """RL's default: no client scheduler; the warmup stays DeepSpeed's WarmupLR from the config, as before."""
    assert lr_scheduler_factory(LearnerConfig(warmup_steps=5)) is None


def test_schedule_resumes_from_its_state():
    """What DeepSpeed's checkpoint keeps (optimizer and scheduler state dicts) continues the sequence exactly."""
    cfg = LearnerConfig(lr=1e-3, warmup_steps=1, lr_schedule="cosine", total_steps=8, min_lr_ratio=0.0)
    whole = _lrs(cfg, 8)
    param = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([param], lr=cfg.lr)
    sched = lr_scheduler_factory(cfg)(opt)
    first = _lrs(cfg, 3, opt, sched)
    saved = opt.state_dict(), sched.state_dict()
    opt2 = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=cfg.lr)
    sched2 = lr_scheduler_factory(cfg)(opt2)
    opt2.load_state_dict(saved[0])
    sched2.load_state_dict(saved[1])
    assert first + _lrs(cfg, 5, opt2, sched2) == pytest.approx(whole)


@pytest.mark.parametrize(("overrides", "key"), [({"lr_schedule": "cosine"}, "learner.total_steps"),
                                                 ({"lr_schedule": "step"}, "learner.lr_schedule"),
                                                 ({"min_lr_ratio": 1.5}, "learner.min_lr_ratio")])
def test_schedule_keys_are_validated(overrides, key):
    with pytest.raises(ConfigError, match=key):
        LearnerConfig(**overrides)


# ---------------------------------------------------------------- tiny model


def _model(tied: bool = False, attn: str = "sdpa") -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                         tie_word_embeddings=tied, attn_implementation=attn)
    return LlamaForCausalLM(config).eval()


def _samples() -> list[SFTSample]:
    g = torch.Generator().manual_seed(1)
    out = []
    for i, n in enumerate([7, 3, 12, 5, 9, 4]):
        ids = torch.randint(1, VOCAB, (n,), generator=g).tolist()
        mask = [0] * (n // 2) + [1] * (n - n // 2)  # a prompt, then the target
        out.append(SFTSample(f"s{i}", ids, mask))
    return out


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def _sft_loss(model: torch.nn.Module, batch: TrainBatch, fused: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    logprobs, _ = token_logprobs_of(model, batch, device=CPU, fused=fused)
    loss, _ = SFT().loss(LossInputs(policy_logprobs=logprobs, old_logprobs=logprobs.detach(),
                                    rollout_logprobs=batch.rollout_logprobs, ref_logprobs=None, entropy=None,
                                    advantages=batch.advantages, loss_mask=batch.loss_mask))
    return loss, logprobs


# ---------------------------------------------------------------- packing


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_rows_equal_padded_in_the_learner(attn):
    """The SFT loss, every target log-prob and every gradient of a packed batch equal the padded batch's."""
    model = _model(attn=attn)
    samples = _samples()
    padded = samples_to_batch(samples, pad_id=0)
    packed = packed_batch(samples, pad_id=0, capacity=16)
    assert len(packed) < len(samples) and packed.position_ids is not None  # really packed
    assert int(packed.loss_mask.sum()) == int(padded.loss_mask.sum())

    loss_pad, lp_pad = _sft_loss(model, padded)
    loss_pad.backward()
    grads_pad = _grads(model)
    loss_pack, lp_pack = _sft_loss(model, packed)
    loss_pack.backward()
    grads_pack = _grads(model)

    torch.testing.assert_close(loss_pack, loss_pad, atol=1e-5, rtol=0)
    from rltrain.ops.packing import pack
    layout = pack([s.input_ids for s in samples], [s.loss_mask for s in samples], 16, 0)  # where each sample sits
    for i, s in enumerate(samples):
        row, start = layout.rows_of[i]
        n = len(s.input_ids)
        mask = padded.loss_mask[i, :n]
        torch.testing.assert_close(lp_pack[row, start:start + n][mask], lp_pad[i, :n][mask], atol=1e-5, rtol=0)
    for name, g in grads_pad.items():
        torch.testing.assert_close(grads_pack[name], g, atol=1e-5, rtol=1e-4, msg=name)


def test_packed_rows_survive_micro_batching():
    """`select` (micro-batches, rank shards) trims packed rows with their positions; the log-probs do not move."""
    model = _model()
    packed = packed_batch(_samples(), pad_id=0, capacity=16)
    with torch.no_grad():
        whole, _ = token_logprobs_of(model, packed, device=CPU)
        part = packed.select(torch.tensor([1]))
        one, _ = token_logprobs_of(model, part, device=CPU)
    assert part.position_ids.shape == part.input_ids.shape
    width = part.input_ids.shape[1]
    torch.testing.assert_close(one[0][part.loss_mask[0]], whole[1, :width][part.loss_mask[0]], atol=1e-5, rtol=0)


@pytest.mark.parametrize("layout", ["padded", "packed"])
@pytest.mark.parametrize("fused", [False, True])
def test_filler_rows_are_short_and_change_nothing(layout, fused):
    """`fill_to` rows: a micro-batch of them alone is 2 positions wide, runs through every log-prob path, and the
    SFT loss and gradients of the filled batch equal the unfilled batch's (they carry no loss)."""
    from rltrain.batching import fill_to

    model = _model()
    samples = _samples()
    batch = samples_to_batch(samples, 0) if layout == "padded" else packed_batch(samples, 0, capacity=16)
    filled = fill_to(batch, len(batch) + 2)
    fillers = filled.select(torch.arange(len(batch), len(batch) + 2))
    assert fillers.input_ids.shape == (2, 2) and not fillers.loss_mask.any()
    lp, ent = token_logprobs_of(model, fillers, device=CPU, with_entropy=True, fused=fused)
    assert torch.isfinite(lp).all() and torch.isfinite(ent).all()
    losses, grads = [], []
    for b in (batch, filled):
        loss, _ = _sft_loss(model, b, fused=fused)
        loss.backward()
        losses.append(loss.detach())
        grads.append(_grads(model))
    torch.testing.assert_close(losses[1], losses[0], atol=1e-6, rtol=0)
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, atol=1e-6, rtol=1e-5, msg=name)


# ---------------------------------------------------------------- fused LM head


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("layout", ["padded", "packed"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_fused_head_equals_plain_path(tied, layout, temperature):
    """Log-probs, entropy (with its gradient, as an entropy bonus needs) and all weight gradients, fp32, 1e-5."""
    model = _model(tied=tied)
    samples = _samples()
    batch = samples_to_batch(samples, 0) if layout == "padded" else packed_batch(samples, 0, capacity=16)
    real = torch.nn.functional.pad(batch.attention_mask[:, 1:].bool(), (1, 0))  # tokens with a real predecessor
    out = {}
    for fused in (False, True):
        lp, ent = token_logprobs_of(model, batch, device=CPU, temperature=temperature, with_entropy=True,
                                    entropy_grad=True, fused=fused)
        # a loss using both outputs, so both backward paths are checked
        ((-lp * batch.loss_mask).sum() - 0.1 * (ent * batch.loss_mask).sum()).backward()
        out[fused] = lp.detach(), ent.detach(), _grads(model)
    (lp0, ent0, g0), (lp1, ent1, g1) = out[False], out[True]
    torch.testing.assert_close(lp1[real], lp0[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(ent1[real], ent0[real], atol=1e-5, rtol=0)
    assert set(g1) == set(g0)
    for name, g in g0.items():
        torch.testing.assert_close(g1[name], g, atol=1e-5, rtol=1e-4, msg=name)


def test_fused_head_without_entropy_grad_matches_metric_entropy():
    """The update's usual call (no entropy bonus): the entropy metric is the same number either way."""
    model = _model()
    batch = samples_to_batch(_samples(), 0)
    real = torch.nn.functional.pad(batch.attention_mask[:, 1:].bool(), (1, 0))
    with torch.no_grad():
        lp0, ent0 = token_logprobs_of(model, batch, device=CPU, with_entropy=True)
        lp1, ent1 = token_logprobs_of(model, batch, device=CPU, with_entropy=True, fused=True)
    torch.testing.assert_close(lp1[real], lp0[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(ent1[real], ent0[real], atol=1e-5, rtol=0)


def test_unsupported_head_falls_back_with_a_reason(caplog):
    model = _model()
    model.lm_head = torch.nn.Linear(64, VOCAB, bias=True)  # a head with a bias: the fused path does not cover it
    with caplog.at_level(logging.WARNING, logger="actors.learner"):
        assert not Learner._fused_ok(model)
    assert "learner.fused_lm_head=true falls back" in caplog.text and "bias-free" in caplog.text
    assert Learner._fused_ok(_model()) and Learner._fused_ok(None)


def test_hand_values_are_cosines():
    """The constants of test_cosine_lr_by_hand are (1 + cos(pi k / 8)) / 2 (guards a typo in them)."""
    assert [0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(8)] == pytest.approx(
        [1.0, 0.9619397662556434, 0.8535533905932737, 0.6913417161825449, 0.5, 0.30865828381745514,
         0.14644660940672627, 0.038060233744356624])
