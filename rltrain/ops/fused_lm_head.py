"""Token log-probs and entropies straight from final hidden states: the LM head fused with the chunked log-softmax.

`token_logprobs_and_entropy` (rltrain/ops/logprobs.py) starts from logits, so its caller has already formed the
whole ``(N, V)`` logits tensor (and autograd keeps it, plus its ``(N, V)`` gradient). Here the logits of a chunk of
tokens exist only while that chunk is processed, in the forward and again (recomputed) in the backward, which
accumulates the gradients of the hidden states and of the head weight chunk by chunk. This is the idea of Liger
Kernel's fused linear cross-entropy, written for log-probs (written here from the math; no Liger code).

Math (spec ALGORITHMS §7.3 P4; z = (h Wᵀ) / temperature, p = softmax(z), y the label):
    log p_y = z_y - lse(z)                       d/dz = onehot(y) - p
    H       = lse(z) - Σ_v p_v z_v               d/dz = -p ⊙ (z - Σ_v p_v z_v)
and d/dh = (dz / temperature) W, d/dW = (dz / temperature)ᵀ h, summed over the chunks.

Precision follows the plain path: the matmul runs in the autocast dtype when autocast is on (bf16 logits, as
``nn.Linear`` under autocast gives), else in the inputs' dtype; the softmax math runs in float32 (float64 for
float64 inputs), and the weight gradient is accumulated in that math dtype over the chunks.

Memory: besides the saved inputs, one ``(N,)`` logsumexp; the working set is ``chunk_size × V`` floats.

Shapes: N tokens, d hidden size, V vocabulary.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["NO_LOGITS", "fused_token_logprobs", "lm_head_weight"]

_DEFAULT_CHUNK = 1024
"""Tokens per chunk: 1024 x 49k vocab x 4 bytes is about 200 MB of float32 (plus the bf16 logits of the chunk)."""


def _matmul_dtype(hidden: Tensor, weight: Tensor) -> torch.dtype:
    """The dtype `nn.Linear` would compute the logits in here: the autocast dtype if autocast is on, else promoted."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return torch.promote_types(hidden.dtype, weight.dtype)


class _FusedLinearLogprobs(torch.autograd.Function):
    """``(logprobs, entropy)`` of ``softmax((hidden @ weightᵀ) * inv_t)`` at ``labels``, chunked (module docstring).

    Both outputs are differentiable; an output that the loss does not use costs nothing in backward (its grad is
    None: materialisation of zero gradients is off)."""

    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, labels: Tensor, inv_t: float,  # type: ignore[override]
                chunk_size: int, mm_dtype: torch.dtype, with_entropy: bool) -> tuple[Tensor, Tensor | None]:
        math = torch.promote_types(mm_dtype, torch.float32)
        n = hidden.shape[0]
        logprobs = hidden.new_empty(n, dtype=math)
        lse = hidden.new_empty(n, dtype=math)
        entropy = hidden.new_empty(n, dtype=math) if with_entropy else None
        with torch.autocast(hidden.device.type, enabled=False):  # the dtypes are chosen here, explicitly
            w = weight.to(mm_dtype)
            for s in range(0, n, chunk_size):
                e = min(s + chunk_size, n)
                z = (hidden[s:e].to(mm_dtype) @ w.T).to(math)  # (C, V): the only logits that exist at a time
                if inv_t != 1.0:
                    z.mul_(inv_t)
                chunk_lse = torch.logsumexp(z, dim=-1)
                lse[s:e] = chunk_lse
                logprobs[s:e] = z.gather(-1, labels[s:e, None]).squeeze(-1) - chunk_lse
                if entropy is not None:
                    entropy[s:e] = chunk_lse - (torch.softmax(z, dim=-1) * z).sum(dim=-1)
        ctx.save_for_backward(hidden, weight, labels, lse)
        ctx.inv_t, ctx.chunk_size, ctx.mm_dtype = inv_t, chunk_size, mm_dtype
        ctx.set_materialize_grads(False)
        return logprobs, entropy

    @staticmethod
    def backward(ctx, grad_logprobs: Tensor | None, grad_entropy: Tensor | None  # type: ignore[override]
                 ) -> tuple[Tensor | None, ...]:
        hidden, weight, labels, lse = ctx.saved_tensors
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if (grad_logprobs is None and grad_entropy is None) or not (want_h or want_w):
            return None, None, None, None, None, None, None
        inv_t, mm_dtype, math = ctx.inv_t, ctx.mm_dtype, lse.dtype
        grad_h = torch.empty_like(hidden) if want_h else None
        grad_w = torch.zeros(weight.shape, dtype=math, device=weight.device) if want_w else None
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(mm_dtype)
            for s in range(0, hidden.shape[0], ctx.chunk_size):
                e = min(s + ctx.chunk_size, hidden.shape[0])
                h = hidden[s:e].to(mm_dtype)
                z = (h @ w.T).to(math)
                if inv_t != 1.0:
                    z.mul_(inv_t)
                p = torch.exp(z - lse[s:e, None])  # (C, V) softmax, from the saved logsumexp
                dz = torch.zeros_like(z)
                if grad_logprobs is not None:  # (onehot(y) - p) * g
                    g = grad_logprobs[s:e].to(math)[:, None]
                    dz.addcmul_(p, g, value=-1.0).scatter_add_(-1, labels[s:e, None], g)
                if grad_entropy is not None:  # -p * (z - E_p[z]) * g
                    mean_z = (p * z).sum(dim=-1, keepdim=True)
                    dz.addcmul_(p * (z - mean_z), grad_entropy[s:e].to(math)[:, None], value=-1.0)
                if inv_t != 1.0:
                    dz.mul_(inv_t)
                dz = dz.to(mm_dtype)
                if grad_h is not None:
                    grad_h[s:e] = dz @ w
                if grad_w is not None:
                    grad_w.add_(dz.T @ h)
        return grad_h, None if grad_w is None else grad_w.to(weight.dtype), None, None, None, None, None


def fused_token_logprobs(
    hidden: Tensor,
    weight: Tensor,
    labels: Tensor,
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
    positions: Tensor | None = None,
    chunk_size: int = _DEFAULT_CHUNK,
) -> tuple[Tensor, Tensor | None]:
    """Label log-probs (and entropy) of ``softmax(hidden @ weightᵀ / temperature)`` without forming all logits.

    Equal to ``token_logprobs_and_entropy(hidden @ weight.T, labels, temperature=...)`` (to float rounding: tests in
    tests/ops/test_fused_lm_head.py), but the logits exist one chunk of tokens at a time, in forward and backward.
    Unlike that function, the entropy here carries a gradient too, so an entropy bonus needs no second path.

    Args:
        hidden: final hidden states (after the last norm), shape ``(..., d)``, any float dtype.
        weight: the LM-head weight ``(V, d)`` (for tied embeddings: the embedding matrix). A head with a bias is not
            supported (no model this project trains has one).
        labels: token ids, shape ``hidden.shape[:-1]``, in ``[0, V)``; ``labels[..., t]`` is the token that
            ``hidden[..., t, :]`` predicts.
        temperature: the sampling temperature, > 0.
        with_entropy: also return the per-token entropy (differentiable); None in its place otherwise.
        positions: optional bool mask, shape of ``labels``: compute only there (0 elsewhere, with no gradient). The
            learner needs log-probs only on trained tokens, so prompt tokens and padding cost no head matmul.
        chunk_size: tokens per chunk (memory knob only; the result does not depend on it).

    Returns:
        ``(logprobs, entropy)``, each of ``labels``' shape, float32 (float64 for float64 inputs).

    Raises:
        ValueError: on mismatched shapes, ``temperature <= 0`` or ``chunk_size < 1``.
    """
    if hidden.shape[:-1] != labels.shape or weight.dim() != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(f"fused_token_logprobs expects hidden (..., d), weight (V, d) and labels (...); got hidden "
                         f"{tuple(hidden.shape)}, weight {tuple(weight.shape)}, labels {tuple(labels.shape)}.")
    if positions is not None and positions.shape != labels.shape:
        raise ValueError(f"positions must have labels' shape {tuple(labels.shape)}; got {tuple(positions.shape)}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0; got {temperature}.")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 token; got {chunk_size}.")
    mm_dtype = _matmul_dtype(hidden, weight)
    flat_h, flat_y = hidden.reshape(-1, hidden.shape[-1]), labels.reshape(-1).long()
    index = None
    if positions is not None:
        index = positions.reshape(-1).nonzero().squeeze(-1)
        flat_h, flat_y = flat_h.index_select(0, index), flat_y.index_select(0, index)
    logprobs, entropy = _FusedLinearLogprobs.apply(flat_h, weight, flat_y, 1.0 / temperature, chunk_size, mm_dtype,
                                                   with_entropy)
    return _scatter(logprobs, index, labels.shape), None if entropy is None else _scatter(entropy, index, labels.shape)


def _scatter(values: Tensor, index: Tensor | None, shape: torch.Size) -> Tensor:
    """(n,) values at the flat `index` of a zero tensor of `shape` (differentiable); a plain reshape without index."""
    if index is None:
        return values.reshape(shape)
    return values.new_zeros(shape.numel()).index_copy(0, index, values).reshape(shape)


NO_LOGITS = torch.empty(0, dtype=torch.long)
"""`logits_to_keep` for a transformers causal LM that makes it compute no logits (an empty index selection)."""


def lm_head_weight(model: torch.nn.Module) -> Tensor:
    """The ``(V, d)`` weight of a causal LM's output head, through DeepSpeed (``.module``) and peft wrappers.

    Raises:
        ValueError: if the head is not a bias-free ``nn.Linear`` (e.g. LoRA was put on ``lm_head``): then use the
            plain logits path (``token_logprobs_and_entropy``).
    """
    inner = getattr(model, "module", model)  # a DeepSpeed engine wraps the model as .module
    if hasattr(inner, "get_base_model"):  # peft: the LoRA layers stay in the graph; only the head is read here
        inner = inner.get_base_model()
    head = inner.get_output_embeddings()
    if type(head) is not torch.nn.Linear or head.bias is not None:
        raise ValueError(f"the fused LM head needs a bias-free nn.Linear output head; this model's is "
                         f"{type(head).__name__}. Leave lm_head out of learner.lora.target_modules, or use the plain "
                         f"logits path.")
    if hasattr(head.weight, "ds_id"):  # ZeRO-3 keeps a shard on each rank, gathered only inside module forwards
        raise ValueError("the fused LM head reads the head weight outside its module's forward, which ZeRO-3 "
                         "partitions; set learner.zero_stage <= 2 or use the plain logits path.")
    return head.weight
