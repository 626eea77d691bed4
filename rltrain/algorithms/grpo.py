"""GRPO: group-normalised outcome advantages with the PPO-clip loss (spec §7.2 A4, §7.3 P1-P2).

Each task is sampled `group_size` times; a trajectory's score is standardised within its group and given
to every policy token of the trajectory. The loss is PPO-clip with clip-low/clip-high and dual clip, an
optional KL-to-reference term and an optional entropy bonus, reduced by the configured aggregation.
Shao et al. 2024, "DeepSeekMath" (arXiv 2402.03300); DAPO (arXiv 2503.14476) for clip-higher.
"""

from __future__ import annotations

from typing import Any

import torch

from rewards.credit import multiturn_advantages, token_credits, trajectory_score, turn_credits
from rltrain.algorithms.base import ALGORITHMS, Algorithm, LossInputs
from rltrain.batching import pad_trajectories
from rltrain.config.grpo import GRPOConfig
from rltrain.ops import aggregate_loss, grpo_outcome_advantages, kl_penalty, ppo_clip_loss
from rltrain.types import TrainBatch, Trajectory


@ALGORITHMS.register("grpo")
class GRPO(Algorithm):
    """Group Relative Policy Optimisation."""

    def __init__(self, cfg: GRPOConfig) -> None:
        self.cfg = cfg

    @property
    def needs_reference(self) -> bool:
        return self.cfg.kl_coef > 0

    @property
    def entropy_in_loss(self) -> bool:
        return self.cfg.entropy_coef > 0

    @property
    def epochs(self) -> int:
        return self.cfg.epochs

    def make_batch(self, trajectories: list[Trajectory], tokenizer: Any) -> tuple[TrainBatch, dict[str, float]]:
        cfg = self.cfg
        if cfg.trajectory_score == "reward":
            scores = torch.tensor([t.reward for t in trajectories], dtype=torch.float32)  # (B,)
        else:
            scores = torch.tensor([trajectory_score(t.turn_rewards, cfg.trajectory_score, cfg.gamma) for t in trajectories],
                                  dtype=torch.float32)
        group_ids = torch.tensor([t.group_id for t in trajectories])
        width = max(len(t.response_ids) for t in trajectories)
        credit = torch.zeros(len(trajectories), width)  # (B, R) in response coordinates
        mask = torch.zeros(len(trajectories), width, dtype=torch.bool)
        for i, t in enumerate(trajectories):
            boundaries = t.turn_boundaries or [0]  # hand-built trajectories: one turn
            rewards = (list(t.turn_rewards) + [0.0] * len(boundaries))[: len(boundaries)]  # a final no-tool turn scores 0
            credits = turn_credits(rewards, cfg.turn_credit, cfg.gamma, cfg.em_k)
            credit[i, : len(t.response_ids)] = torch.tensor(token_credits(boundaries, credits, len(t.response_ids)))
            mask[i, : len(t.response_ids)] = torch.tensor(t.loss_mask, dtype=torch.bool)
        token_adv = multiturn_advantages(credit, mask, scores, group_ids, cfg.norm_adv_by_std, cfg.fix_zero_credit)  # (B, R)
        advantages = grpo_outcome_advantages(scores, group_ids, norm_by_std=cfg.norm_adv_by_std)  # (B,), for metrics
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        batch = pad_trajectories(trajectories, [row[: len(t.response_ids)].tolist() for row, t in zip(token_adv, trajectories)], pad_id)
        zero_groups = _groups_without_signal(scores, group_ids)
        return batch, {"grpo/adv_abs_mean": float(advantages.abs().mean()), "grpo/zero_std_group_frac": zero_groups}

    def loss(self, inputs: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.cfg
        loss, metrics = ppo_clip_loss(inputs.policy_logprobs, inputs.old_logprobs, inputs.advantages, inputs.loss_mask,
                                      cfg.clip_low, cfg.clip_high, cfg.dual_clip_c, cfg.loss_agg)
        metrics = {f"learner/{k}": v for k, v in metrics.items()}
        metrics["learner/pg_loss"] = loss.detach()
        if inputs.ref_logprobs is not None:
            kl = aggregate_loss(kl_penalty(inputs.policy_logprobs, inputs.ref_logprobs, cfg.kl_estimator), inputs.loss_mask, cfg.loss_agg)
            loss = loss + cfg.kl_coef * kl
            metrics["learner/kl"] = kl.detach()
        if cfg.entropy_coef and inputs.entropy is not None:
            loss = loss - cfg.entropy_coef * aggregate_loss(inputs.entropy, inputs.loss_mask, cfg.loss_agg)
        return loss, metrics


def _groups_without_signal(scores: torch.Tensor, group_ids: torch.Tensor) -> float:
    """Fraction of groups whose scores are all equal: they carry no GRPO gradient."""
    groups = group_ids.unique()
    flat = sum(bool((scores[group_ids == g] == scores[group_ids == g][0]).all()) for g in groups)
    return flat / max(1, len(groups))
