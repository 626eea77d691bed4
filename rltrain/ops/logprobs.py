"""Token log-probabilities and entropies from logits.

This module owns the step from model logits to the per-token quantities the
losses consume (spec §7.3 P4: "sequence log-prob utilities"; a sequence
log-prob is ``masked_sum`` of these over its tokens). The math runs in float32
(or float64 for float64 logits) whatever the logits' dtype, and never
materialises a full ``(B, T, V)`` log-softmax: it gathers the label logit and
subtracts a logsumexp computed over chunks of tokens, so the float32 working
set is ``chunk_size * V`` rather than ``B * T * V``.

Shapes: B batch, T tokens, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["entropy_from_logits", "token_logprobs"]

_DEFAULT_CHUNK = 1024
"""Tokens per chunk: 1024 x 152k vocab x 4 bytes is about 620 MB of float32."""


def _math_dtype(logits: Tensor) -> torch.dtype:
    return torch.promote_types(logits.dtype, torch.float32)


def _check_chunk(chunk_size: int) -> None:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 token; got {chunk_size}.")


def _map_token_chunks(logits: Tensor, chunk_size: int, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """Apply ``fn`` ((C, V) upcast chunk -> (C,)) over all tokens; return (B, T).

    Splits per batch row before chunking: ``logits[b]`` is a view even when
    ``logits`` is a slice such as ``logits[:, :-1]``, whereas flattening that
    slice to ``(B*T, V)`` would copy all of it.
    """
    dtype = _math_dtype(logits)
    if logits.numel() == 0:
        return logits.new_zeros(logits.shape[:-1], dtype=dtype)
    rows = [torch.cat([fn(chunk.to(dtype)) for chunk in row.split(chunk_size)]) for row in logits]  # B x (T,)
    return torch.stack(rows)  # (B, T)


def token_logprobs(logits: Tensor, labels: Tensor, *, chunk_size: int = _DEFAULT_CHUNK) -> Tensor:
    """Log-probability of each label token: ``log_softmax(logits)[..., label]``.

    Computed as ``logits[label] - logsumexp(logits)`` in float32, chunked over
    the tokens of each row (a sliced input such as ``logits[:, :-1]`` is not
    copied). Under autograd each chunk's float32 copy (for half-precision
    logits) is kept for the backward pass, as any unfused implementation
    must; without autograd (rollout, reference) only one chunk lives at a time.

    Args:
        logits: unnormalised scores, shape ``(B, T, V)``, any float dtype.
        labels: token ids, shape ``(B, T)``, integer in ``[0, V)``. Align them
            with the logits first (``labels[:, t]`` is the token that
            ``logits[:, t]`` predicts).
        chunk_size: tokens per logsumexp chunk (memory knob only; the result
            does not depend on it).

    Returns:
        Log-probabilities, shape ``(B, T)``, float32 (float64 for float64 logits).

    Raises:
        ValueError: if ``labels.shape != logits.shape[:-1]`` or ``chunk_size < 1``.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:-1]:
        raise ValueError(
            "token_logprobs expects logits (B, T, V) and labels (B, T); got logits "
            f"{tuple(logits.shape)} and labels {tuple(labels.shape)}."
        )
    _check_chunk(chunk_size)
    label_logits = logits.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)  # (B, T)
    lse = _map_token_chunks(logits, chunk_size, lambda z: torch.logsumexp(z, dim=-1))  # (B, T)
    return label_logits.to(lse.dtype) - lse


def entropy_from_logits(logits: Tensor, *, chunk_size: int = _DEFAULT_CHUNK) -> Tensor:
    """Entropy of the softmax distribution at each position.

    ``H = logsumexp(z) - sum_v softmax(z)_v * z_v`` (the form verl
    ``entropy_from_logits`` uses), in float32, chunked over tokens.

    Args:
        logits: unnormalised scores, shape ``(B, T, V)``, any float dtype.
        chunk_size: tokens per chunk (memory knob only).

    Returns:
        Entropies in nats, shape ``(B, T)``, float32 (float64 for float64 logits).

    Raises:
        ValueError: if ``logits`` is not 3-D or ``chunk_size < 1``.
    """
    if logits.dim() != 3:
        raise ValueError(f"entropy_from_logits expects logits (B, T, V); got {tuple(logits.shape)}.")
    _check_chunk(chunk_size)

    def chunk_entropy(z: Tensor) -> Tensor:  # (C, V) -> (C,)
        return torch.logsumexp(z, dim=-1) - (torch.softmax(z, dim=-1) * z).sum(dim=-1)

    return _map_token_chunks(logits, chunk_size, chunk_entropy)
