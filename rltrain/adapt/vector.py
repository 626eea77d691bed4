"""The adaptation vector δ (spec §5.1): its loss gradient, its Adam update, one update pass on a prefill.

δ ∈ R^{d_model} is added to the final hidden state of every position before the LM head, so
logits = W_U (h + δ) = W_U h + W_U δ. It is learned online, with no gradient through the transformer, from the
next-token loss of the prompt being prefilled: L(δ) = -(1/N) Σ_t m_t log softmax(W_U(h_t+δ))[x_{t+1}].

Gradient (analytic, as in the reference): dL/dz_t = m_t (softmax(z_t) - onehot(x_{t+1})) / N, and
dL/dδ = W_U^T Σ_t dL/dz_t. We implement the exact gradient of the stated loss (`softmax_mask="exact"`): a masked
position contributes nothing. The reference code multiplies only the one-hot term by the mask, so masked
positions still push δ away from whatever the model predicts there (spec §5.1, "Quirk"); that version is kept as
`softmax_mask="reference"` to reproduce the paper's numbers, never as the default, because it is not the gradient of
any loss that ignores user text: it is the gradient of that loss plus Σ_masked logsumexp(z_t), an entropy-like push
on text the agent never has to predict.

Pure torch, no engine: both engines (`rltrain.engines.hf_engine`, `rltrain.engines.vllm_worker`) call `adapt_step`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

SoftmaxMask = Literal["exact", "reference"]


@dataclass(frozen=True)
class AdaptConfig:
    """How δ learns (spec §5.1 defaults; `adapt.*` in configs).

    Attributes:
        lr: Adam learning rate (PA_LR; the BFCL script's 0.1).
        steps: Adam steps per prefill (PA_STEPS; 1).
        beta1, beta2, eps: Adam's constants (0.9, 0.95, 1e-6 as in the reference).
        weight_decay: decoupled weight decay (1e-5): δ ← δ - lr·wd·δ besides the Adam step.
        mask_user: leave user-role segments out of the loss (the reference's `mask_tokens`).
        softmax_mask: "exact" (masked positions contribute no gradient) or "reference" (the reference's quirk).
        chunk: positions per logits chunk: the update holds at most chunk × vocab floats, not prompt × vocab.
    """

    lr: float = 0.1
    steps: int = 1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-6
    weight_decay: float = 1e-5
    mask_user: bool = False
    softmax_mask: SoftmaxMask = "exact"
    chunk: int = 512

    def __post_init__(self) -> None:
        if self.lr < 0 or self.steps < 0:
            raise ValueError(f"adapt.lr={self.lr} and adapt.steps={self.steps} must be >= 0")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"adapt.beta1={self.beta1} and adapt.beta2={self.beta2} must lie in [0, 1)")
        if self.softmax_mask not in ("exact", "reference"):
            raise ValueError(f"adapt.softmax_mask={self.softmax_mask!r} must be 'exact' or 'reference'")
        if self.chunk < 1:
            raise ValueError(f"adapt.chunk={self.chunk} must be >= 1")


@dataclass
class AdaptState:
    """One session's δ and Adam moments (float32, on the LM head's device). Zero at start and after a reset."""

    delta: torch.Tensor
    m: torch.Tensor
    v: torch.Tensor
    t: int = 0
    prefills: int = 0
    last_loss: float | None = None
    losses: list[float] = field(default_factory=list)
    cached_prefills: int = 0
    """Prefills that were not adapted because part of the prompt came from a prefix cache (vLLM; should stay 0)."""

    @classmethod
    def zeros(cls, hidden: int, device: torch.device | str = "cpu") -> AdaptState:
        z = torch.zeros(hidden, dtype=torch.float32, device=device)
        return cls(z.clone(), z.clone(), z.clone())

    def reset(self) -> None:
        self.delta.zero_()
        self.m.zero_()
        self.v.zero_()
        self.t, self.prefills, self.last_loss, self.losses, self.cached_prefills = 0, 0, None, [], 0

    def summary(self) -> dict[str, float | int | None]:
        """What an episode record keeps of δ: its norm, Adam steps taken, prefills seen, the last prompt loss."""
        return {"delta_norm": float(self.delta.norm()), "adam_steps": self.t, "prefills": self.prefills,
                "last_loss": self.last_loss, "cached_prefills": self.cached_prefills}


def delta_loss_and_grad(hidden: torch.Tensor, head: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                        delta: torch.Tensor, softmax_mask: SoftmaxMask = "exact",
                        chunk: int = 512) -> tuple[float, torch.Tensor]:
    """L(δ) and dL/dδ for one prompt (spec §5.1).

    Args:
        hidden: (T, d) final (normed) hidden states of the positions that predict `labels`.
        head: (V, d) the LM head W_U.
        labels: (T,) the next token of each position.
        mask: (T,) 1 where the position counts in the loss, 0 for masked (user) positions.
        delta: (d,) the current δ.
        softmax_mask: see the module docstring.
        chunk: positions per logits chunk (memory O(chunk·V)).

    Returns:
        the masked mean loss (0.0 when nothing counts) and the gradient (d,), float32.
    """
    mask = mask.to(torch.float32)
    n_valid = float(mask.sum())
    grad_logits_sum = torch.zeros(head.shape[0], dtype=torch.float32, device=head.device)
    if n_valid == 0:
        return 0.0, torch.zeros_like(delta, dtype=torch.float32)
    w = head.detach().to(torch.float32)
    loss = 0.0
    for start in range(0, hidden.shape[0], chunk):
        h = hidden[start:start + chunk].to(torch.float32) + delta
        y, m = labels[start:start + chunk], mask[start:start + chunk]
        logp = torch.log_softmax(h @ w.T, dim=-1)  # (c, V)
        loss -= float((logp.gather(1, y[:, None]).squeeze(1) * m).sum())
        p = logp.exp_()
        # Σ_t (softmax_t·s_t − onehot_t·m_t): s_t = m_t for the exact gradient, 1 for the reference's quirk.
        weights = m if softmax_mask == "exact" else torch.ones_like(m)
        grad_logits_sum += (p * weights[:, None]).sum(0)
        grad_logits_sum.index_add_(0, y, -m)
    return loss / n_valid, (grad_logits_sum / n_valid) @ w


def adam_update(state: AdaptState, grad: torch.Tensor, cfg: AdaptConfig) -> None:
    """One Adam step with bias correction and decoupled weight decay, in place (spec §5.1):
    δ ← δ − lr·m̂/(√v̂ + eps) − lr·wd·δ (the decay uses δ before the step, as torch's AdamW)."""
    state.t += 1
    state.m.mul_(cfg.beta1).add_(grad, alpha=1 - cfg.beta1)
    state.v.mul_(cfg.beta2).addcmul_(grad, grad, value=1 - cfg.beta2)
    m_hat = state.m / (1 - cfg.beta1 ** state.t)
    v_hat = state.v / (1 - cfg.beta2 ** state.t)
    state.delta.mul_(1 - cfg.lr * cfg.weight_decay).sub_(cfg.lr * m_hat / (v_hat.sqrt() + cfg.eps))


def adapt_step(state: AdaptState, hidden: torch.Tensor, head: torch.Tensor, labels: torch.Tensor,
               mask: torch.Tensor | None, cfg: AdaptConfig) -> None:
    """The update of one prefill: `cfg.steps` Adam steps on the prompt's next-token loss, δ changed in place.

    `hidden` (T, d) are the final hidden states of prompt positions 0..T-1 and `labels` the tokens 1..T; the
    last prompt position has no label in the prompt, so callers pass hidden[:-1] and ids[1:].
    """
    mask = torch.ones_like(labels, dtype=torch.float32) if mask is None else mask
    hidden = hidden.detach()
    for _ in range(cfg.steps):
        loss, grad = delta_loss_and_grad(hidden, head, labels, mask, state.delta, cfg.softmax_mask, cfg.chunk)
        adam_update(state, grad, cfg)
        state.last_loss = loss
        state.losses.append(round(loss, 6))
    state.prefills += 1
