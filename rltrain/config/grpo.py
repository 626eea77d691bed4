"""GRPO's own settings (spec §1.7, §1.8, §7.2, §7.3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rltrain.config.loader import check


@dataclass(frozen=True)
class GRPOConfig:
    norm_adv_by_std: bool = True
    """Divide group-centred scores by the group's (unbiased) std; False gives Dr. GRPO's mean-only centring."""
    clip_low: float = 0.2
    """PPO clip below: ratio >= 1 - clip_low (spec §7.3 P1)."""
    clip_high: float = 0.2
    """PPO clip above: ratio <= 1 + clip_high; DAPO's clip-higher uses 0.28."""
    dual_clip_c: float | None = 3.0
    """Dual-clip bound for negative advantages (> 1), or null to disable (UserRL 3.0, xRouter 10.0)."""
    kl_coef: float = 0.0
    """beta of the KL-to-reference loss term; 0 skips the reference model entirely."""
    kl_estimator: Literal["k1", "k2", "k3", "low_var_kl"] = "low_var_kl"
    """KL estimator for the loss term (verl names)."""
    entropy_coef: float = 0.0
    """Entropy bonus coefficient (0 in UserRL and xRouter)."""
    loss_agg: Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"] = "token-mean"
    """How per-token losses are reduced; see `rltrain.ops.aggregate` for each mode's length bias."""
    epochs: int = 1
    """Passes over each step's batch (ppo_epochs)."""
    trajectory_score: Literal["reward", "sum", "r2g"] = "reward"
    """The score that is group-normalised: the accountant's `reward`, or from the turn rewards (spec §1.7):
    `sum` (UserRL's "Sum", which is the MEAN turn reward) or `r2g` (discounted return from the first turn)."""
    turn_credit: Literal["equalized", "r2g", "em"] = "equalized"
    """How the advantage is spread over turns (spec §1.7): equal, reward-to-go, or exponential mapping."""
    gamma: float = 0.8
    """Discount for `r2g` scores and credits (UserRL 0.8)."""
    em_k: float = 2.0
    """k of the exponential-mapping credit (UserRL 2)."""
    dynamic_sampling: bool = False
    """DAPO dynamic sampling (spec §4.5; arXiv 2503.14476): drop groups whose scores all agree (std 0, no GRPO signal)
    and generate further rounds of prompts until `trainer.prompts_per_step` groups with signal are collected or
    `max_sampling_rounds` rounds have run (then the step trains on the groups it has). xRouter turns it on."""
    max_sampling_rounds: int = 10
    """Most generation rounds per step under dynamic sampling (verl's max_num_gen_batches, 10 in xRouter)."""
    fix_zero_credit: bool = False
    """Give a trajectory whose turn credits are all zero the plain advantage, instead of zero (UserRL's code zeroes
    it, so failed trajectories under turn-level r2g are never pushed down)."""

    def __post_init__(self) -> None:
        check(0 <= self.clip_low < 1, f"algorithm.grpo.clip_low={self.clip_low} must be in [0, 1)")
        check(self.clip_high >= 0, f"algorithm.grpo.clip_high={self.clip_high} must be >= 0")
        check(self.dual_clip_c is None or self.dual_clip_c > 1,
              f"algorithm.grpo.dual_clip_c={self.dual_clip_c} must be > 1, or null to disable dual clip")
        check(self.kl_coef >= 0, f"algorithm.grpo.kl_coef={self.kl_coef} must be >= 0")
        check(self.epochs >= 1, f"algorithm.grpo.epochs={self.epochs} must be >= 1")
        check(0 <= self.gamma <= 1, f"algorithm.grpo.gamma={self.gamma} must be in [0, 1]")
        check(self.max_sampling_rounds >= 1, f"algorithm.grpo.max_sampling_rounds={self.max_sampling_rounds} must be >= 1")
