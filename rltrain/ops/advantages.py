"""Outcome advantages from one scalar score per sampled response.

This module owns group-relative baselines over responses that share a prompt
(spec §7.2 A3-A5): GRPO's normalised advantage and RLOO's leave-one-out
advantage. Both take per-response scalars and return per-response scalars;
broadcasting over tokens (times the loss mask) is the caller's job. To add an
estimator, write a pure function with the same ``(scores, group_ids)`` inputs.

Shapes: B batch (responses). Groups are arbitrary integer ids, not
necessarily contiguous, sorted or starting at 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["flat_groups", "grpo_outcome_advantages", "rloo_advantages"]


def _check_grouped_scores(name: str, scores: Tensor, group_ids: Tensor) -> None:
    if scores.dim() != 1 or group_ids.shape != scores.shape:
        raise ValueError(
            f"{name} expects 1-D scores (B,) and group_ids (B,) of the same shape; "
            f"got scores {tuple(scores.shape)} and group_ids {tuple(group_ids.shape)}. "
            "Sum token-level rewards over tokens first."
        )
    if not scores.is_floating_point():
        raise TypeError(f"{name} expects floating-point scores; got {scores.dtype}.")
    if group_ids.is_floating_point() or group_ids.is_complex():
        raise TypeError(
            f"{name} expects integer group_ids (one id per prompt); got {group_ids.dtype}. Map uid strings to integers first."
        )


def _group_index(group_ids: Tensor) -> tuple[Tensor, Tensor]:
    """Dense group index per response and the size of each group.

    Returns:
        ``(inverse, counts)``: ``inverse`` (B,) long in ``[0, G)``, ``counts`` (G,) long.
    """
    _, inverse, counts = torch.unique(group_ids, return_inverse=True, return_counts=True)
    return inverse, counts


def flat_groups(scores: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor]:
    """Which groups carry no GRPO signal: two or more responses whose scores are all exactly equal.

    Exact equality (max == min), not a small std: a tie on a value that binary cannot represent (0.1, 0.7,
    1/3) leaves a float32 std of ~1e-8, which divided by ``std + eps`` would give advantages up to 0.1.

    Returns:
        ``(flat, inverse)``: ``flat`` (G,) bool per group, ``inverse`` (B,) the dense group index of each response.
    """
    inverse, counts = _group_index(group_ids)  # (B,), (G,)
    num_groups = counts.shape[0]
    highs = scores.new_full((num_groups,), float("-inf")).scatter_reduce_(0, inverse, scores, "amax")  # (G,)
    lows = scores.new_full((num_groups,), float("inf")).scatter_reduce_(0, inverse, scores, "amin")  # (G,)
    return (highs == lows) & (counts > 1), inverse


def grpo_outcome_advantages(
    scores: Tensor,
    group_ids: Tensor,
    norm_by_std: bool = True,
    eps: float = 1e-6,
) -> Tensor:
    """GRPO outcome advantage: the score standardised within its prompt's group.

    ``A_b = (S_b - mean_g) / (std_g + eps)`` if ``norm_by_std``, else
    ``A_b = S_b - mean_g``, where ``g`` is the group of ``b``, ``mean_g`` the
    group mean and ``std_g`` the unbiased (Bessel, ``N - 1``) standard
    deviation, as ``torch.std`` computes it. A group of one response gets
    ``mean = 0`` and ``std = 1``, so its advantage is its own score (divided by
    ``1 + eps``), not 0. A group of two or more whose scores are all exactly
    equal (max == min) gets advantage exactly 0: rounding in the mean and std
    would otherwise give it up to ~0.1 in float32 (0.7 x 16), as verl does.
    This is verl ``compute_grpo_outcome_advantage`` (v0.9.1) on the summed
    token rewards (spec §1.7 steps 2-3, §7.2 A3/A4). ``norm_by_std=False`` is
    the Dr. GRPO variant (arXiv 2503.20783); GRPO is arXiv 2402.03300.

    Args:
        scores: one scalar score per response, shape ``(B,)``, float.
        group_ids: prompt id of each response, shape ``(B,)``, integer.
        norm_by_std: divide by the group's std (+ ``eps``); verl's
            ``norm_adv_by_std_in_grpo``.
        eps: added to the std before dividing; verl's ``epsilon`` (1e-6).

    Returns:
        Advantages, shape ``(B,)``, dtype of ``scores``. Computed without
        gradient tracking (advantages are constants in the policy loss).

    Raises:
        ValueError / TypeError: if shapes or dtypes are wrong.
    """
    _check_grouped_scores("grpo_outcome_advantages", scores, group_ids)
    with torch.no_grad():
        inverse, counts = _group_index(group_ids)  # (B,), (G,)
        num_groups = counts.shape[0]
        counts_f = counts.to(scores.dtype)  # (G,)
        sums = scores.new_zeros(num_groups).index_add_(0, inverse, scores)  # (G,)
        means = sums / counts_f  # (G,)
        centred = scores - means[inverse]  # (B,)
        sq_sums = scores.new_zeros(num_groups).index_add_(0, inverse, centred.square())  # (G,)
        # Bessel's correction; singleton groups are overwritten below, so the
        # clamp only keeps their (unused) value finite.
        stds = (sq_sums / (counts_f - 1).clamp(min=1)).sqrt()  # (G,)
        singleton_mask = counts == 1  # (G,)
        means = torch.where(singleton_mask, torch.zeros_like(means), means)
        stds = torch.where(singleton_mask, torch.ones_like(stds), stds)
        advantages = scores - means[inverse]  # (B,)
        if norm_by_std:
            advantages = advantages / (stds[inverse] + eps)
        flat, _ = flat_groups(scores, group_ids)  # (G,)
        advantages = advantages.masked_fill(flat[inverse], 0.0)
    return advantages


def rloo_advantages(rewards: Tensor, group_ids: Tensor) -> Tensor:
    """RLOO advantage: the reward minus the mean reward of the group's other samples.

    ``A_k = r_k - (1 / (K - 1)) * sum_{j != k} r_j`` for a group of ``K``
    samples of one prompt (spec §3.1, §7.2 A5; Kool et al. 2019 "Buy 4
    REINFORCE samples, get a baseline for free"; Ahmadian et al., arXiv
    2402.14740). Equivalently ``A_k = K / (K - 1) * (r_k - mean_g)``, which is
    how verl ``compute_rloo_outcome_advantage`` computes it.

    Unlike verl, which passes a singleton group's reward through unchanged,
    a group of one sample is an error here: it has no leave-one-out baseline.

    Args:
        rewards: one scalar reward per sample, shape ``(B,)``, float.
        group_ids: prompt id of each sample, shape ``(B,)``, integer.

    Returns:
        Advantages, shape ``(B,)``, dtype of ``rewards``, without gradient tracking.

    Raises:
        ValueError: if a group has a single sample, or shapes are wrong.
    """
    _check_grouped_scores("rloo_advantages", rewards, group_ids)
    with torch.no_grad():
        inverse, counts = _group_index(group_ids)  # (B,), (G,)
        singleton_mask = counts < 2  # (G,)
        if bool(singleton_mask.any()):  # input validation: one host sync
            lone_ids = torch.unique(group_ids)[singleton_mask].tolist()
            raise ValueError(
                "rloo_advantages needs at least 2 samples per group for the leave-one-out "
                f"baseline, but group id(s) {lone_ids[:10]} have 1 sample. Sample K >= 2 "
                "completions per prompt, or use grpo_outcome_advantages, which treats a "
                "singleton group as mean 0, std 1."
            )
        counts_f = counts.to(rewards.dtype)  # (G,)
        sums = rewards.new_zeros(counts.shape[0]).index_add_(0, inverse, rewards)  # (G,)
        others_mean = (sums[inverse] - rewards) / (counts_f[inverse] - 1)  # (B,)
        return rewards - others_mean
