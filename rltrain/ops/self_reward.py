"""LaTRO's self-reward (spec §3.1-3.2): the policy scores its own rationales by the gold answer's likelihood.

Shapes: B rationales. All inputs are sequence-level sums of token log-probs.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["latro_self_reward"]


def latro_self_reward(
    answer_logprob: Tensor,
    policy_rationale_logprob: Tensor,
    ref_rationale_logprob: Tensor,
    finished: Tensor,
    kl_coef: float,
    penalty_factor: float | None,
) -> tuple[Tensor, Tensor]:
    """r_k = log pi(y|x+z_k) - beta * [log pi(z_k|x) - log pi_0(z_k|x)], with the non-stop penalty.

    Args:
        answer_logprob: (B,) log pi_theta(y | x + z_k), summed over the gold answer's tokens.
        policy_rationale_logprob: (B,) log pi_theta(z_k | x), summed over the rationale's tokens.
        ref_rationale_logprob: (B,) log pi_0(z_k | x) under the frozen initial model.
        finished: (B,) bool, the rationale hit a stop token or stop sequence.
        kl_coef: beta.
        penalty_factor: when not None, the reward of an unfinished rationale becomes
            `penalty_factor * mean(reward over the whole batch)` (authors' code, `non_stop_penalty`;
            rewards are log-likelihoods, so a factor of 2 makes it about twice as bad as average).

    Returns:
        (reward, kl): both (B,); `kl` is the single-sample sequence log-ratio log pi(z|x) - log pi_0(z|x).

    LaTRO, Chen et al. 2024 (arXiv 2411.04282), eq. for r_k; SalesforceAIResearch/LaTRO latro_trainer.py.
    """
    kl = policy_rationale_logprob - ref_rationale_logprob  # (B,)
    reward = answer_logprob - kl_coef * kl  # (B,)
    if penalty_factor is not None and not bool(finished.all()):
        reward = torch.where(finished, reward, penalty_factor * reward.mean())
    return reward, kl
