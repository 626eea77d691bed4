"""LaTRO: latent reasoning optimisation with self-reward (spec §3; Chen et al. 2024, arXiv 2411.04282).

K rationales z_k are sampled per question x; the policy itself scores them by the likelihood of the gold
answer y. Nothing in the reward comes from outside the learner, so the work splits as:

- driver (`make_batch`): cut each rationale at its first stop token or stop sequence, and build the row
  x + z_k + y with `loss_mask` on z_k and `answer_mask` on y (one forward pass gives both log-probs);
- learner (`prepare_on_learner`, no grad, pre-update weights): r_k = log pi(y|x+z_k) - beta [log pi(z_k|x) -
  log pi_0(z_k|x)], the non-stop penalty, and RLOO advantages A_k = r_k - mean_{j != k} r_j;
- learner (`loss`, per micro-batch): -A_k log pi(z_k|x) + sft_penalty * (-log pi(y|x+z_k)), averaged over
  rationales. No ratio, no clipping; one optimizer step per rollout batch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from rltrain.algorithms.base import ALGORITHMS, Algorithm, LossInputs
from rltrain.config.latro import LaTROConfig
from rltrain.ops import aggregate_loss, latro_self_reward, masked_mean, masked_sum, rloo_advantages
from rltrain.types import TrainBatch, Trajectory


def truncate_rationale(ids: list[int], tokenizer: Any, stop_sequences: tuple[str, ...], stop_ids: set[int]) -> tuple[list[int], bool]:
    """Cut generated ids at the first stop token, or before the token where a stop sequence begins.

    Returns the kept ids and whether a stop was found (spec §3.2: an unfinished rationale is penalised).
    """
    end = next((i for i, t in enumerate(ids) if t in stop_ids), None)
    ids = ids[:end] if end is not None else ids
    text = tokenizer.decode(ids)
    hits = [text.find(s) for s in stop_sequences if s in text]
    if not hits:
        return ids, end is not None
    cut = min(hits)
    keep = len(ids)
    while keep > 0 and len(tokenizer.decode(ids[:keep])) > cut:  # the longest token prefix that ends before the stop text
        keep -= 1
    return ids[:keep], True


@ALGORITHMS.register("latro")
class LaTRO(Algorithm):
    """Self-rewarding rationale optimisation with an RLOO baseline."""

    def __init__(self, cfg: LaTROConfig) -> None:
        self.cfg = cfg

    @property
    def needs_reference(self) -> bool:
        return self.cfg.kl_coef > 0

    @property
    def needs_frozen_logprobs(self) -> bool:
        return True

    @property
    def rollout_stop_strings(self) -> tuple[str, ...]:
        return self.cfg.stop_sequences

    def make_batch(self, trajectories: list[Trajectory], tokenizer: Any) -> tuple[TrainBatch, dict[str, float]]:
        stop_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
        rows, finished = [], []
        for traj in trajectories:
            rationale, done = truncate_rationale(traj.response_ids, tokenizer, self.cfg.stop_sequences, stop_ids)
            text = tokenizer.decode(rationale)
            gold = self.cfg.answer_template.format(answer=traj.task_data["answer"])
            answer = tokenizer.encode(gold if not text or text[-1].isspace() else " " + gold, add_special_tokens=False)
            answer = answer + [tokenizer.eos_token_id]
            rows.append((traj.prompt_ids, rationale, answer, traj.rollout_logprobs[: len(rationale)]))
            finished.append(done)
        width = max(len(p) + len(z) + len(y) for p, z, y, _ in rows)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        B = len(rows)
        input_ids = torch.full((B, width), pad, dtype=torch.long)  # (B, T)
        attention_mask = torch.zeros((B, width), dtype=torch.long)
        loss_mask = torch.zeros((B, width), dtype=torch.bool)
        answer_mask = torch.zeros((B, width), dtype=torch.bool)
        rollout_logprobs = torch.zeros((B, width))
        for i, (p, z, y, lp) in enumerate(rows):
            n = len(p) + len(z) + len(y)
            input_ids[i, :n] = torch.tensor(p + z + y)
            attention_mask[i, :n] = 1
            loss_mask[i, len(p) : len(p) + len(z)] = True
            answer_mask[i, len(p) + len(z) : n] = True
            rollout_logprobs[i, len(p) : len(p) + len(z)] = torch.tensor(lp)  # the mismatch metric compares these
        batch = TrainBatch(input_ids, attention_mask, loss_mask, torch.zeros((B, width)), rollout_logprobs, torch.zeros(B),
                           group_ids=torch.tensor([t.group_id for t in trajectories]), answer_mask=answer_mask,
                           finished=torch.tensor(finished))
        lengths = loss_mask.sum(dim=1).float()
        return batch, {"latro/finished_frac": sum(finished) / B, "latro/rationale_len": float(lengths.mean())}

    def prepare_on_learner(self, batch: TrainBatch, frozen_logprobs: torch.Tensor,
                           ref_logprobs: torch.Tensor | None) -> tuple[TrainBatch, dict[str, float]]:
        """Self-rewards and RLOO advantages from the pre-update policy (spec §3.3 steps 4-5)."""
        assert batch.answer_mask is not None and batch.finished is not None and batch.group_ids is not None
        answer_lp = masked_sum(frozen_logprobs, batch.answer_mask, dim=-1)  # (B,)
        rationale_lp = masked_sum(frozen_logprobs, batch.loss_mask, dim=-1)  # (B,)
        ref_lp = masked_sum(ref_logprobs, batch.loss_mask, dim=-1) if ref_logprobs is not None else rationale_lp
        real = batch.answer_mask.any(dim=-1)  # filler rows (failed trajectories) have no answer tokens
        reward, kl = latro_self_reward(answer_lp[real], rationale_lp[real], ref_lp[real], batch.finished[real],
                                       self.cfg.kl_coef, self.cfg.penalty_factor if self.cfg.non_stop_penalty else None)
        advantages = torch.zeros(len(batch))
        advantages[real] = rloo_advantages(reward, batch.group_ids[real])
        token_advantages = advantages[:, None] * batch.loss_mask  # (B, T)
        rewards = torch.zeros(len(batch))
        rewards[real] = reward
        metrics = {
            "latro/self_reward": float(reward.mean()), "latro/answer_logprob": float(answer_lp[real].mean()),
            "latro/kl": float(kl.mean()), "latro/adv_mean": float(advantages[real].mean()),
            "latro/adv_std": float(advantages[real].std()) if int(real.sum()) > 1 else 0.0,
        }
        return dataclasses.replace(batch, advantages=token_advantages, sequence_rewards=rewards), metrics

    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean over rationales of -A_k log pi(z_k|x) + sft_penalty * (-log pi(y|x+z_k)) (spec §3.2)."""
        assert inputs.answer_mask is not None
        # seq-mean-token-sum: each rationale's summed log-prob, averaged over the rationales that have tokens
        policy_loss = aggregate_loss(-inputs.advantages * inputs.policy_logprobs, inputs.loss_mask, "seq-mean-token-sum")
        answer_loss = aggregate_loss(-inputs.policy_logprobs, inputs.answer_mask, "seq-mean-token-sum")
        loss = policy_loss + self.cfg.sft_penalty * answer_loss
        return loss, {
            "learner/pg_loss": policy_loss.detach(),
            "learner/answer_nll": answer_loss.detach(),
            "learner/answer_token_nll": masked_mean(-inputs.policy_logprobs.detach(), inputs.answer_mask),
        }
