"""GRPO: group-normalised outcome advantages with the PPO-clip loss (spec §7.2 A4, §7.3 P1-P2).

Each task is sampled `group_size` times; a trajectory's score is standardised within its group and given
to every policy token of the trajectory. The loss is PPO-clip with clip-low/clip-high and dual clip, an
optional KL-to-reference term and an optional entropy bonus, reduced by the configured aggregation.
Shao et al. 2024, "DeepSeekMath" (arXiv 2402.03300); DAPO (arXiv 2503.14476) for clip-higher (`clip_high` 0.28)
and dynamic sampling (`dynamic_sampling`, `rltrain.algorithms.dynamic_sampling`).
"""

from __future__ import annotations

from typing import Any

import torch

from rewards.credit import multiturn_advantages, per_turn_rewards, token_credits, trajectory_score, turn_credits
from rltrain.algorithms.base import ALGORITHMS, Algorithm, LossInputs
from rltrain.algorithms.dynamic_sampling import split_groups
from rltrain.batching import pad_trajectories
from rltrain.config.grpo import GRPOConfig
from rltrain.ops import aggregate_loss, grpo_outcome_advantages, kl_penalty, ppo_clip_loss
from rltrain.ops.advantages import flat_groups
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

    def group_score(self, traj: Trajectory) -> float:
        """The score GRPO normalises within a group (what dynamic sampling checks for spread)."""
        if self.cfg.trajectory_score == "reward":
            return float(traj.reward if traj.reward is not None else 0.0)
        return _score(traj, self.cfg.trajectory_score, self.cfg.gamma)

    @property
    def sampling_rounds(self) -> int:
        """Most rollout rounds per step: `max_sampling_rounds` under DAPO dynamic sampling, else 1 (the driver refills
        the batch with `rltrain.algorithms.dynamic_sampling.fill_batch` when this is > 1)."""
        return self.cfg.max_sampling_rounds if self.cfg.dynamic_sampling else 1

    def make_batch(self, trajectories: list[Trajectory], tokenizer: Any) -> tuple[TrainBatch, dict[str, float]]:
        cfg = self.cfg
        dropped: dict[str, float] = {}
        if cfg.dynamic_sampling:
            # DAPO's filter (the refill rounds are the driver's, `dynamic_sampling.fill_batch`): groups whose scores all
            # agree carry no advantage, so they are not trained on. When every group is flat, the batch is kept (its
            # advantages are all 0) so that the step's shape stays valid.
            kept, flat, _ = split_groups(trajectories, min_samples=1, score=self.group_score)
            if kept:
                trajectories = [t for group in kept for t in group]
            dropped = {"dapo/filtered_zero_std_groups": float(flat if kept else 0)}
        if cfg.trajectory_score == "reward":
            scores = torch.tensor([t.reward for t in trajectories], dtype=torch.float32)  # (B,)
        else:
            scores = torch.tensor([_score(t, cfg.trajectory_score, cfg.gamma) for t in trajectories], dtype=torch.float32)
        group_ids = torch.tensor([t.group_id for t in trajectories])
        width = max(len(t.response_ids) for t in trajectories)
        credit = torch.zeros(len(trajectories), width)  # (B, R) in response coordinates
        mask = torch.zeros(len(trajectories), width, dtype=torch.bool)
        for i, t in enumerate(trajectories):
            boundaries = t.turn_boundaries or [0]  # hand-built trajectories: one turn
            rewards = per_turn_rewards(t.turn_rewards, len(boundaries))  # a final no-call turn scores 0 and counts in T
            credits = turn_credits(rewards, cfg.turn_credit, cfg.gamma, cfg.em_k)
            credit[i, : len(t.response_ids)] = torch.tensor(token_credits(boundaries, credits, len(t.response_ids)))
            mask[i, : len(t.response_ids)] = torch.tensor(t.loss_mask, dtype=torch.bool)
        token_adv = multiturn_advantages(credit, mask, scores, group_ids, cfg.norm_adv_by_std, cfg.fix_zero_credit)  # (B, R)
        advantages = grpo_outcome_advantages(scores, group_ids, norm_by_std=cfg.norm_adv_by_std)  # (B,), for metrics
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        batch = pad_trajectories(trajectories, [row[: len(t.response_ids)].tolist() for row, t in zip(token_adv, trajectories)], pad_id)
        zero_groups = _groups_without_signal(scores, group_ids)
        return batch, {"grpo/adv_abs_mean": float(advantages.abs().mean()), "grpo/zero_std_group_frac": zero_groups, **dropped}

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


def _score(traj: Trajectory, method: str, gamma: float) -> float:
    """The trajectory score over all T assistant turns, the final no-call turn included (spec §1.7)."""
    return float(trajectory_score(traj.turn_rewards, method, gamma, num_turns=len(traj.turn_boundaries) or None))


def _groups_without_signal(scores: torch.Tensor, group_ids: torch.Tensor) -> float:
    """Fraction of groups that get advantage exactly 0 (tied groups of two or more, `flat_groups`): no gradient."""
    flat, _ = flat_groups(scores, group_ids)
    return float(flat.float().mean())
