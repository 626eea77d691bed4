"""LaTRO's pieces against hand-computed values (spec §3.1-3.3)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rltrain.algorithms import LossInputs, build_algorithm
from rltrain.algorithms.latro import truncate_rationale
from rltrain.config import ConfigError, load_config
from rltrain.ops import latro_self_reward, masked_sum, token_logprobs
from rltrain.types import Trajectory


def latro(*overrides: str):
    return build_algorithm(load_config(None, ["algorithm.name=latro", *overrides]).algorithm)


@pytest.fixture(scope="module")
def tokenizer(embedded_model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_model)


def test_self_reward_hand_computed() -> None:
    """§3.1: r = log p(y|x+z) - beta (log p(z|x) - log p0(z|x)).
    Row 0: -2 - 0.5 * (-3 - -4) = -2.5; row 1: -1 - 0.5 * (-5 - -5) = -1; row 2 unfinished: -4 - 0.5 * 2 = -5.
    §3.2 non-stop penalty, factor 2: batch mean (-2.5 - 1 - 5) / 3 = -2.8333, so row 2 gets -5.6667."""
    answer = torch.tensor([-2.0, -1.0, -4.0])
    policy, ref = torch.tensor([-3.0, -5.0, -6.0]), torch.tensor([-4.0, -5.0, -8.0])
    finished = torch.tensor([True, True, False])
    reward, kl = latro_self_reward(answer, policy, ref, finished, kl_coef=0.5, penalty_factor=None)
    torch.testing.assert_close(reward, torch.tensor([-2.5, -1.0, -5.0]))
    torch.testing.assert_close(kl, torch.tensor([1.0, 0.0, 2.0]))
    reward, _ = latro_self_reward(answer, policy, ref, finished, kl_coef=0.5, penalty_factor=2.0)
    torch.testing.assert_close(reward, torch.tensor([-2.5, -1.0, 2 * (-8.5 / 3)]))


def test_truncation_at_stop_token_and_sequence(tokenizer) -> None:
    """§3.2: cut at the first stop token or stop sequence; the rest is discarded."""
    eos = tokenizer.eos_token_id
    text = tokenizer.encode("4 plus 3 is 7. The answer is 7.", add_special_tokens=False)
    kept, done = truncate_rationale(text + [eos], tokenizer, ("The answer is",), {eos})
    assert done and tokenizer.decode(kept).rstrip() == "4 plus 3 is 7."
    kept, done = truncate_rationale(tokenizer.encode("4 plus 3", add_special_tokens=False) + [eos, 5, 6], tokenizer, ("The answer is",), {eos})
    assert done and tokenizer.decode(kept) == "4 plus 3"
    kept, done = truncate_rationale(tokenizer.encode("no stop here", add_special_tokens=False), tokenizer, ("The answer is",), {eos})
    assert not done and tokenizer.decode(kept) == "no stop here"


def test_make_batch_builds_x_z_y_rows(tokenizer) -> None:
    prompt = tokenizer.encode("Q?", add_special_tokens=False)
    rationale = tokenizer.encode("2 and 3 make 5. The answer is 5", add_special_tokens=False)
    traj = Trajectory(task_id="q", group_id=0, env="word_problems", prompt_ids=prompt, response_ids=rationale,
                      loss_mask=[1] * len(rationale), rollout_logprobs=[-1.0] * len(rationale), task_data={"answer": 5})
    batch, metrics = latro().make_batch([traj, traj], tokenizer)
    row = batch.input_ids[0][batch.attention_mask[0].bool()].tolist()
    z = tokenizer.decode(batch.input_ids[0][batch.loss_mask[0]].tolist())
    y = tokenizer.decode(batch.input_ids[0][batch.answer_mask[0]].tolist())
    assert row[: len(prompt)] == prompt and z.rstrip() == "2 and 3 make 5." and y == " The answer is 5.<|im_end|>"
    assert batch.finished.tolist() == [True, True] and metrics["latro/finished_frac"] == 1.0
    assert batch.group_ids.tolist() == [0, 0]


def test_prepare_on_learner_rloo_hand_computed() -> None:
    """Two groups of K=2 with beta=0: r = log p(y|x+z) = sums over answer tokens.
    Rows: answer log-probs (-1,-1), (-3), (-2), (-4,-4) -> r = (-2, -3, -2, -8).
    RLOO (§3.1): A = r_k - r_other: (1, -1, 6, -6)."""
    T = 4
    answer_mask = torch.tensor([[0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 1, 1]], dtype=torch.bool)
    loss_mask = torch.tensor([[0, 1, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 1, 0, 0]], dtype=torch.bool)
    frozen = torch.tensor([[0, -0.5, -1, -1], [0, -0.1, -0.2, -3], [0, -0.3, -0.3, -2], [0, -0.7, -4, -4]])
    from rltrain.types import TrainBatch

    z = torch.zeros(4, T)
    batch = TrainBatch(torch.ones(4, T, dtype=torch.long), torch.ones(4, T, dtype=torch.long), loss_mask, z, z, torch.zeros(4),
                       group_ids=torch.tensor([0, 0, 1, 1]), answer_mask=answer_mask, finished=torch.ones(4, dtype=torch.bool))
    out, metrics = latro("algorithm.latro.kl_coef=0").prepare_on_learner(batch, frozen, None)
    torch.testing.assert_close(out.sequence_rewards, torch.tensor([-2.0, -3.0, -2.0, -8.0]))
    torch.testing.assert_close(out.advantages[:, 1], torch.tensor([1.0, -1.0, 6.0, -6.0]))
    assert out.advantages[1, 2] == -1.0 and out.advantages[0, 2] == 0  # advantage only on rationale tokens
    assert metrics["latro/self_reward"] == pytest.approx(-3.75)


def test_loss_hand_computed() -> None:
    """§3.2 loss = mean_k(-A_k sum_z logp) + sft * mean_k(-sum_y logp).
    Row 0: A=2, z logp (-1, -2), y logp (-0.5); row 1: A=-1, z logp (-3), y logp (-1, -1).
    pg = mean(-2*(-3), +1*(-3)) = mean(6, -3) = 1.5; answer = mean(0.5, 2) = 1.25; sft 1 -> 2.75."""
    policy = torch.tensor([[0, -1, -2, -0.5], [0, -3, -1, -1]], requires_grad=True)
    loss_mask = torch.tensor([[0, 1, 1, 0], [0, 1, 0, 0]], dtype=torch.bool)
    answer_mask = torch.tensor([[0, 0, 0, 1], [0, 0, 1, 1]], dtype=torch.bool)
    advantages = torch.tensor([[0, 2.0, 2.0, 0], [0, -1.0, 0, 0]])
    inputs = LossInputs(policy, policy.detach(), policy.detach(), None, None, advantages, loss_mask, answer_mask)
    loss, metrics = latro().loss(inputs)
    assert loss.item() == pytest.approx(2.75) and metrics["learner/pg_loss"].item() == pytest.approx(1.5)
    loss, _ = latro("algorithm.latro.sft_penalty=0").loss(inputs)  # the authors' released code
    assert loss.item() == pytest.approx(1.5)


def test_reinforce_gradient_matches_a_per_sequence_reference(tiny_model: Path) -> None:
    """The batched, right-padded loss gives the same gradient as -(1/K) sum_k A_k log pi(z_k|x) computed one
    unpadded sequence at a time (spec §3.1 estimator, sft_penalty 0)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    seqs = [([5, 6, 7], [8, 9]), ([5, 6], [10, 11, 12]), ([4], [13])]  # (x, z) of different lengths
    adv = torch.tensor([1.5, -0.5, -1.0])
    width = max(len(x) + len(z) for x, z in seqs)
    ids = torch.zeros(3, width, dtype=torch.long)
    attn, mask = torch.zeros(3, width, dtype=torch.long), torch.zeros(3, width, dtype=torch.bool)
    for i, (x, z) in enumerate(seqs):
        ids[i, : len(x) + len(z)] = torch.tensor(x + z)
        attn[i, : len(x) + len(z)] = 1
        mask[i, len(x) : len(x) + len(z)] = True
    logits = model(input_ids=ids, attention_mask=attn).logits
    lp = torch.nn.functional.pad(token_logprobs(logits[:, :-1], ids[:, 1:]), (1, 0))
    inputs = LossInputs(lp, lp.detach(), lp.detach(), None, None, adv[:, None] * mask, mask, torch.zeros_like(mask))
    latro("algorithm.latro.sft_penalty=0").loss(inputs)[0].backward()
    batched = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.zero_grad()
    total = 0.0
    for (x, z), a in zip(seqs, adv):
        row = torch.tensor([x + z])
        logp = torch.log_softmax(model(input_ids=row).logits[0, :-1], dim=-1)
        total = total - a * sum(logp[len(x) - 1 + j, t] for j, t in enumerate(z)) / len(seqs)
    total.backward()
    for name, p in model.named_parameters():
        if p.grad is not None and p.grad.abs().max() > 0:
            torch.testing.assert_close(batched[name], p.grad, rtol=1e-3, atol=1e-5)


def test_segment_logprobs_ignore_padding_side(tiny_model: Path) -> None:
    """§7.3 P4: sum of log p(z|x) is the same right-padded (ours), left-padded, and unpadded."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    x, z = [5, 6, 7], [8, 9, 10]
    with torch.no_grad():
        plain = token_logprobs(model(input_ids=torch.tensor([x + z])).logits[:, :-1], torch.tensor([x + z])[:, 1:])
        right = torch.tensor([x + z + [0, 0]])
        r_lp = token_logprobs(model(input_ids=right, attention_mask=torch.tensor([[1] * 6 + [0, 0]])).logits[:, :-1], right[:, 1:])
        left = torch.tensor([[0, 0] + x + z])
        l_attn = torch.tensor([[0, 0] + [1] * 6])
        l_lp = token_logprobs(model(input_ids=left, attention_mask=l_attn, position_ids=(l_attn.cumsum(-1) - 1).clamp(min=0)).logits[:, :-1], left[:, 1:])
    want = plain[0, 2:].sum()
    mask_right = torch.tensor([[0, 0, 1, 1, 1, 0, 0]], dtype=torch.bool)  # predicts tokens 3..5 of x+z
    mask_left = torch.tensor([[0, 0, 0, 0, 1, 1, 1]], dtype=torch.bool)
    torch.testing.assert_close(masked_sum(r_lp, mask_right), want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(masked_sum(l_lp, mask_left), want, rtol=1e-5, atol=1e-5)


def test_config_checks() -> None:
    with pytest.raises(ConfigError, match="RLOO baseline needs K >= 2"):
        load_config(None, ["algorithm.name=latro", "trainer.group_size=1", "learner.micro_batch_size=4"])
    with pytest.raises(ConfigError, match="multiple of learner.num_learners=2"):
        load_config(None, ["algorithm.name=latro", "trainer.prompts_per_step=3", "learner.num_learners=2",
                           "learner.micro_batch_size=2"])
    with pytest.raises(ConfigError, match="one optimizer step per rollout batch"):
        load_config(None, ["algorithm.name=latro", "learner.mini_batch_size=8"])
    assert latro().needs_reference and not latro("algorithm.latro.kl_coef=0").needs_reference
