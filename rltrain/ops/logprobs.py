"""Token log-probabilities and entropies from logits.

This module owns the step from model logits to the per-token quantities the
losses consume (spec §7.3 P4: "sequence log-prob utilities"; a sequence
log-prob is ``masked_sum`` of these over its tokens). The math runs in float32
(or float64 for float64 logits) whatever the logits' dtype, and never
materialises a full ``(B, T, V)`` log-softmax: it gathers the label logit and
subtracts a logsumexp computed over chunks of tokens, so the float32 working
set is ``chunk_size * V`` rather than ``B * T * V``.

Under autograd, ``token_logprobs`` keeps only the logits and one logsumexp per
token for its backward pass and rebuilds ``softmax`` chunk by chunk there, so
its gradient is one ``(B, T, V)`` tensor in the logits' dtype: no float32 copy
of bf16 logits is kept between forward and backward, and no extra ``(B, T, V)``
buffers appear in backward (autograd through ``logsumexp`` and ``gather``
would build three). ``token_logprobs_and_entropy`` also returns the (detached)
entropy from the same pass over the logits, and takes the sampling
temperature, so the caller need not divide a ``(B, T, V)`` tensor by it.

Shapes: B batch, T tokens, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["entropy_from_logits", "token_logprobs", "token_logprobs_and_entropy"]

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


def _check_logits_labels(name: str, logits: Tensor, labels: Tensor) -> None:
    if logits.dim() != 3 or labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"{name} expects logits (B, T, V) and labels (B, T); got logits "
            f"{tuple(logits.shape)} and labels {tuple(labels.shape)}."
        )


def _chunks(logits: Tensor, chunk_size: int) -> list[tuple[int, int, int]]:
    """(row, start, end) token ranges covering ``logits`` (B, T, V), ``chunk_size`` tokens at most each."""
    return [(b, s, min(s + chunk_size, logits.shape[1])) for b in range(logits.shape[0])
            for s in range(0, logits.shape[1], chunk_size)]


class _TokenLogprobs(torch.autograd.Function):
    """``log_softmax(logits * inv_t)[label]`` with a chunked, recomputing backward (see the module docstring).

    Forward returns ``(logprobs, entropy)``; entropy (or None) is not differentiable through this function.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, labels: Tensor, inv_t: float, chunk_size: int,  # type: ignore[override]
                with_entropy: bool) -> tuple[Tensor, Tensor | None]:
        dtype = _math_dtype(logits)
        shape = logits.shape[:-1]
        logprobs = torch.empty(shape, dtype=dtype, device=logits.device)
        lse = torch.empty(shape, dtype=dtype, device=logits.device)
        entropy = torch.empty(shape, dtype=dtype, device=logits.device) if with_entropy else None
        for b, s, e in _chunks(logits, chunk_size):
            z = logits[b, s:e].to(dtype)  # (C, V); a view, not a copy, when already float32
            if inv_t != 1.0:
                z = z * inv_t
            chunk_lse = torch.logsumexp(z, dim=-1)  # (C,)
            lse[b, s:e] = chunk_lse
            logprobs[b, s:e] = z.gather(-1, labels[b, s:e, None]).squeeze(-1) - chunk_lse
            if entropy is not None:
                entropy[b, s:e] = chunk_lse - (torch.softmax(z, dim=-1) * z).sum(dim=-1)
        ctx.save_for_backward(logits, labels, lse)
        ctx.inv_t, ctx.chunk_size = inv_t, chunk_size
        ctx.set_materialize_grads(False)
        if entropy is not None:
            ctx.mark_non_differentiable(entropy)
        return logprobs, entropy

    @staticmethod
    def backward(ctx, grad_logprobs: Tensor | None, _grad_entropy: Tensor | None  # type: ignore[override]
                 ) -> tuple[Tensor | None, None, None, None, None]:
        if grad_logprobs is None:
            return None, None, None, None, None
        logits, labels, lse = ctx.saved_tensors
        inv_t = ctx.inv_t
        grad = torch.empty(logits.shape, dtype=logits.dtype, device=logits.device)  # the only (B, T, V) tensor
        for b, s, e in _chunks(logits, ctx.chunk_size):
            g = grad_logprobs[b, s:e].to(lse.dtype)  # (C,)
            z = logits[b, s:e].to(lse.dtype)
            if inv_t != 1.0:
                z = z * inv_t
            # d log p_y / d z_v = 1[v = y] - p_v, times the chain factor inv_t of z = logits * inv_t
            chunk = torch.exp(z - lse[b, s:e, None]).mul_(-g[:, None])  # (C, V); fresh, never aliases logits
            chunk.scatter_add_(-1, labels[b, s:e, None], g[:, None])
            if inv_t != 1.0:
                chunk.mul_(inv_t)
            grad[b, s:e] = chunk
        return grad, None, None, None, None


def token_logprobs_and_entropy(
    logits: Tensor,
    labels: Tensor,
    *,
    temperature: float = 1.0,
    with_entropy: bool = True,
    chunk_size: int = _DEFAULT_CHUNK,
) -> tuple[Tensor, Tensor | None]:
    """Label log-probs of ``softmax(logits / temperature)`` and, from the same pass, the entropy.

    The log-probs carry a gradient (to ``logits``) when the logits do; the
    entropy is always detached: it serves metrics. Use ``entropy_from_logits``
    where an entropy term is part of the loss. Dividing by ``temperature``
    happens chunk by chunk, so no ``(B, T, V)`` copy of the logits is made.
    Memory under autograd: see the module docstring.

    Args:
        logits: unnormalised scores, shape ``(B, T, V)``, any float dtype.
        labels: token ids, shape ``(B, T)``, integer in ``[0, V)``, aligned
            with the logits (``labels[:, t]`` is the token ``logits[:, t]`` predicts).
        temperature: the sampling temperature, > 0 (1 leaves the logits as they are).
        with_entropy: also return the entropy; None in its place otherwise.
        chunk_size: tokens per chunk (memory knob only; the result does not depend on it).

    Returns:
        ``(logprobs, entropy)``, each shape ``(B, T)``, float32 (float64 for
        float64 logits); ``entropy`` is None unless ``with_entropy``.

    Raises:
        ValueError: if ``labels.shape != logits.shape[:-1]``, ``chunk_size < 1``
            or ``temperature <= 0``.
    """
    _check_logits_labels("token_logprobs_and_entropy", logits, labels)
    _check_chunk(chunk_size)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0; got {temperature}.")
    return _TokenLogprobs.apply(logits, labels.long(), 1.0 / temperature, chunk_size, with_entropy)


def token_logprobs(logits: Tensor, labels: Tensor, *, chunk_size: int = _DEFAULT_CHUNK) -> Tensor:
    """Log-probability of each label token: ``log_softmax(logits)[..., label]``.

    Computed as ``logits[label] - logsumexp(logits)`` in float32, chunked over
    the tokens of each row (a sliced input such as ``logits[:, :-1]`` is not
    copied). Under autograd only the logits and one logsumexp per token are
    kept for the backward pass, which rebuilds the softmax chunk by chunk
    (``token_logprobs_and_entropy``, of which this is the entropy-free case).

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
    _check_logits_labels("token_logprobs", logits, labels)
    _check_chunk(chunk_size)
    return _TokenLogprobs.apply(logits, labels.long(), 1.0, chunk_size, False)[0]


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
