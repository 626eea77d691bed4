"""Clipped policy-gradient losses over token log-probabilities.

This module owns the PPO-clip surrogate with asymmetric clipping and
dual-clip (spec §7.3 P1), as verl ``core_algos.compute_policy_loss_vanilla``
(v0.9.1, registered as "vanilla") computes it, without its config object and
its rollout importance weights. A new policy loss is a new pure function
returning ``(loss, metrics)`` with detached metric tensors.

Shapes: B batch, T tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rltrain.ops.aggregate import aggregate_loss, masked_mean

__all__ = ["ppo_clip_loss"]

# verl clamps the log-ratio before exp() "for stability"; same bound here.
_LOG_RATIO_BOUND = 20.0


def _check_clip_params(clip_low: float, clip_high: float, dual_clip_c: float | None) -> None:
    if not 0.0 <= clip_low < 1.0:
        raise ValueError(
            f"clip_low must be in [0, 1) so that the ratio floor 1 - clip_low is positive; "
            f"got {clip_low}. The usual value is 0.2."
        )
    if clip_high < 0.0:
        raise ValueError(f"clip_high must be >= 0; got {clip_high}. Use 0.2 (PPO) or 0.28 (DAPO clip-higher).")
    if dual_clip_c is not None and not dual_clip_c > 1.0:
        raise ValueError(
            f"dual_clip_c must be > 1 (it bounds the loss of negative-advantage tokens at "
            f"-A * c, above the clipped PPO loss); got {dual_clip_c}. Use 3.0, or None to "
            "turn dual clipping off."
        )


def ppo_clip_loss(
    policy_logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    loss_mask: Tensor,
    clip_low: float,
    clip_high: float,
    dual_clip_c: float | None,
    agg_mode: str,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate loss with asymmetric clip and optional dual clip.

    Per token, with ``log_r = clamp(policy_logprobs - old_logprobs, -20, 20)``
    and ``r = exp(log_r)``:

        l_ppo  = max(-A * r, -A * clamp(r, 1 - clip_low, 1 + clip_high))
        l      = min(l_ppo, -A * dual_clip_c)   where A < 0 and dual clip is on
        l      = l_ppo                           elsewhere

    then ``aggregate_loss(l, loss_mask, agg_mode)``. PPO: Schulman et al.,
    arXiv 1707.06347; asymmetric "clip-higher": DAPO, arXiv 2503.14476;
    dual clip: Ye et al., arXiv 1912.09729. Matches verl
    ``compute_policy_loss_vanilla`` with ``clip_ratio_low/high`` and
    ``clip_ratio_c`` (spec §7.3 P1), including its log-ratio clamp.

    Args:
        policy_logprobs: log-probs of the sampled tokens under the policy
            being trained, shape ``(B, T)``, with gradient.
        old_logprobs: log-probs under the policy that the advantages were
            computed for (behaviour policy of this PPO step), shape ``(B, T)``.
        advantages: per-token advantages, shape ``(B, T)`` (broadcast a
            per-response advantage over its tokens first).
        loss_mask: which tokens count, shape ``(B, T)``, bool or 0/1 float.
        clip_low: epsilon below 1 for the ratio, in ``[0, 1)`` (0.2).
        clip_high: epsilon above 1 for the ratio, ``>= 0`` (0.2, or 0.28 in DAPO).
        dual_clip_c: bound ``c > 1`` on the loss of negative-advantage tokens
            (3.0 or 10.0 in spec §7.3 P1), or None for no dual clip.
        agg_mode: aggregation mode, see ``rltrain.ops.aggregate.AGG_MODES``.

    Returns:
        ``(loss, metrics)``: ``loss`` is a 0-d tensor with gradient; ``metrics``
        holds detached 0-d tensors, each a mean over the masked tokens:
        ``"clip_frac"``, the fraction where the clipped term is strictly the
        larger (verl ``pg_clipfrac``); ``"clip_frac_lower"``, the fraction with
        ``A < 0`` where the dual clip binds (verl ``pg_clipfrac_lower``; 0
        when off); ``"approx_kl"``, the mean of ``-log_r`` (verl ``ppo_kl``,
        the k1 estimate of KL(old || policy), taken on the clamped log-ratio).

    Raises:
        ValueError: if a clip parameter is out of range, ``agg_mode`` is
            unknown or the shapes differ.
    """
    _check_clip_params(clip_low, clip_high, dual_clip_c)
    shape = policy_logprobs.shape
    if len(shape) != 2 or any(t.shape != shape for t in (old_logprobs, advantages, loss_mask)):
        raise ValueError(
            "ppo_clip_loss expects policy_logprobs, old_logprobs, advantages and loss_mask "
            f"of one shape (B, T); got {tuple(shape)}, {tuple(old_logprobs.shape)}, "
            f"{tuple(advantages.shape)} and {tuple(loss_mask.shape)}."
        )

    log_ratio = (policy_logprobs - old_logprobs).clamp(-_LOG_RATIO_BOUND, _LOG_RATIO_BOUND)
    ratio = log_ratio.exp()
    unclipped_loss = -advantages * ratio
    clipped_loss = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    ppo_loss = torch.maximum(unclipped_loss, clipped_loss)

    negative_adv_mask = advantages < 0
    if dual_clip_c is None:
        token_loss = ppo_loss
        dual_clipped_mask = torch.zeros_like(negative_adv_mask)
    else:
        dual_bound = -advantages * dual_clip_c
        token_loss = torch.where(negative_adv_mask, torch.minimum(ppo_loss, dual_bound), ppo_loss)
        dual_clipped_mask = negative_adv_mask & (ppo_loss > dual_bound)

    loss = aggregate_loss(token_loss, loss_mask, agg_mode)

    with torch.no_grad():
        metrics = {
            "clip_frac": masked_mean((clipped_loss > unclipped_loss).to(log_ratio.dtype), loss_mask),
            "clip_frac_lower": masked_mean(dual_clipped_mask.to(log_ratio.dtype), loss_mask),
            "approx_kl": masked_mean(-log_ratio, loss_mask),
        }
    return loss, {name: value.detach() for name, value in metrics.items()}
