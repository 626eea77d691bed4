"""Masked reductions: turn a per-token loss matrix into one scalar.

This module owns the loss aggregation modes shared by every policy loss
(spec §7.3 P1: "token-mean aggregation"). The mode names and their semantics
follow verl ``core_algos.agg_loss`` (v0.9.1) for a single data-parallel rank.
To add a mode, write a private ``_mode(loss_mat, loss_mask) -> Tensor`` and
add it to ``AGG_MODES``; the unknown-mode error lists the keys of that dict.

Shapes: B batch, T tokens.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["AGG_MODES", "aggregate_loss", "masked_mean", "masked_sum"]


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of ``x`` over the positions where ``mask`` is non-zero.

    Values outside the mask never reach the sum, even when they are NaN or
    inf (``torch.where`` selects before multiplying), as in verl's
    ``masked_sum``. A float mask weights each position by its value.

    Args:
        x: values, any shape, e.g. ``(B, T)``.
        mask: bool or float tensor of the same shape as ``x``.
        dim: dimension to reduce; ``None`` reduces everything to a scalar.

    Returns:
        The masked sum, ``x`` reduced over ``dim`` (a 0-d tensor when ``dim`` is None).
    """
    selected = torch.where(mask.bool(), x, torch.zeros_like(x))
    if mask.dtype != torch.bool:
        selected = selected * mask
    return selected.sum() if dim is None else selected.sum(dim=dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over the positions where ``mask`` is non-zero.

    The denominator is the mask's sum (its count for a bool mask). Where that
    sum is zero the result is 0, not NaN: verl divides by ``count + 1e-8`` and
    gets 0 there too, while being off by a relative 1e-8 elsewhere; this
    function is exact elsewhere.

    Args:
        x: values, any shape, e.g. ``(B, T)``.
        mask: bool or float tensor of the same shape as ``x``.
        dim: dimension to reduce; ``None`` reduces everything to a scalar.

    Returns:
        The masked mean, ``x`` reduced over ``dim``.
    """
    total = masked_sum(x, mask, dim)
    count = mask.sum() if dim is None else mask.sum(dim=dim)
    count = count.to(total.dtype)
    safe_count = torch.where(count != 0, count, torch.ones_like(count))
    return total / safe_count


def _token_mean(loss_mat: Tensor, loss_mask: Tensor) -> Tensor:
    return masked_mean(loss_mat, loss_mask)


def _seq_mean_token_sum(loss_mat: Tensor, loss_mask: Tensor) -> Tensor:
    seq_losses = masked_sum(loss_mat, loss_mask, dim=-1)  # (B,)
    nonempty_mask = loss_mask.sum(dim=-1) > 0  # (B,)
    return masked_mean(seq_losses, nonempty_mask)


def _seq_mean_token_mean(loss_mat: Tensor, loss_mask: Tensor) -> Tensor:
    seq_losses = masked_mean(loss_mat, loss_mask, dim=-1)  # (B,)
    nonempty_mask = loss_mask.sum(dim=-1) > 0  # (B,)
    return masked_mean(seq_losses, nonempty_mask)


AGG_MODES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "token-mean": _token_mean,
    "seq-mean-token-sum": _seq_mean_token_sum,
    "seq-mean-token-mean": _seq_mean_token_mean,
}
"""Aggregation mode name -> reduction ``(loss_mat (B, T), loss_mask (B, T)) -> ()``."""


def aggregate_loss(loss_mat: Tensor, loss_mask: Tensor, mode: str) -> Tensor:
    """Reduce a per-token loss matrix to a scalar, as verl ``agg_loss`` does on one rank.

    With ``n_b = sum_t m_bt`` tokens in row b and ``S`` the set of rows with
    ``n_b > 0``:

    - ``"token-mean"``: ``sum_bt m_bt l_bt / sum_bt m_bt``. Every token in the
      batch weighs the same, so there is no per-sequence length bias; but the
      weight ``1 / sum m`` depends on how many tokens the (micro-)batch holds,
      so the loss scale moves from batch to batch (DAPO's token-level loss,
      arXiv 2503.14476 §3.3; the aggregation of spec §7.3 P1).
    - ``"seq-mean-token-sum"``: ``(1/|S|) sum_{b in S} sum_t m_bt l_bt``. Each
      token weighs ``1/|S|``, again with no length preference between
      sequences, but the loss and its gradient grow with response length, so
      their variance does too. Dr. GRPO (arXiv 2503.20783) divides this sum
      by a constant (the max length) instead of by ``|S|``; the two differ
      only by a scale.
    - ``"seq-mean-token-mean"``: ``(1/|S|) sum_{b in S} (1/n_b) sum_t m_bt l_bt``,
      the original GRPO loss (arXiv 2402.03300, eq. 3). A token of a short
      sequence weighs more than one of a long sequence: with a positive
      advantage short answers are pushed up harder, with a negative one long
      answers are pushed down less, so wrong answers drift longer. This is
      the length bias named by Dr. GRPO (arXiv 2503.20783, §3.1).

    Rows whose mask is all zero are left out of the sequence means (the
    ``|S|`` above), exactly as verl does. If no token at all is selected the
    result is 0 (verl returns NaN there: 0/0); the gradient is then zero.

    Args:
        loss_mat: per-token losses, shape ``(B, T)``, float.
        loss_mask: which tokens count, shape ``(B, T)``, bool or 0/1 float.
        mode: one of ``AGG_MODES``: "token-mean", "seq-mean-token-sum",
            "seq-mean-token-mean".

    Returns:
        The aggregated loss, a 0-d tensor that keeps the graph of ``loss_mat``.

    Raises:
        ValueError: if ``mode`` is unknown or the shapes differ.
    """
    reduce = AGG_MODES.get(mode)
    if reduce is None:
        raise ValueError(f"Unknown loss aggregation mode {mode!r}; valid modes are {sorted(AGG_MODES)}.")
    if loss_mat.shape != loss_mask.shape or loss_mat.dim() != 2:
        raise ValueError(
            "aggregate_loss expects loss_mat and loss_mask of the same shape (B, T); "
            f"got loss_mat {tuple(loss_mat.shape)} and loss_mask {tuple(loss_mask.shape)}."
        )
    return reduce(loss_mat, loss_mask)
