"""Pure tensor math shared by the algorithms: advantages, KL, losses, reductions.

Every function here takes tensors and scalars and returns tensors (losses
return ``(loss, metrics)`` with detached metric tensors). Nothing reads a
config, logs, calls ``.item()`` or talks to other ranks; the learner and the
algorithm plug-ins do that. Formulas follow verl ``trainer/ppo/core_algos.py``
(v0.9.1) and spec §1.7, §7.2, §7.3; ``bench/verl_compare.py`` checks them
against verl numerically.

Modules:
    advantages   GRPO and RLOO outcome advantages over prompt groups.
    kl           per-token KL estimators (k1, k2, k3 / low_var_kl).
    aggregate    masked sums/means and the loss aggregation modes.
    policy_loss  PPO-clip loss with asymmetric and dual clipping.
    logprobs     token log-probs and entropies from logits (fused, chunked backward).
    self_reward  LaTRO's self-reward with the non-stop penalty.

To add an op: put it in the module that owns its concept (or a new module
named after it), keep it pure, give it shapes in its docstring, test it
against hand-computed numbers and a loop in ``tests/ops/``, and re-export it here.
"""

from rltrain.ops.advantages import grpo_outcome_advantages, rloo_advantages
from rltrain.ops.aggregate import AGG_MODES, aggregate_loss, masked_mean, masked_sum
from rltrain.ops.kl import KL_ESTIMATORS, kl_penalty
from rltrain.ops.logprobs import entropy_from_logits, token_logprobs, token_logprobs_and_entropy
from rltrain.ops.policy_loss import ppo_clip_loss
from rltrain.ops.self_reward import latro_self_reward

__all__ = [
    "AGG_MODES",
    "KL_ESTIMATORS",
    "aggregate_loss",
    "entropy_from_logits",
    "grpo_outcome_advantages",
    "kl_penalty",
    "latro_self_reward",
    "masked_mean",
    "masked_sum",
    "ppo_clip_loss",
    "rloo_advantages",
    "token_logprobs",
    "token_logprobs_and_entropy",
]
