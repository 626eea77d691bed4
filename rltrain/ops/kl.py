"""Per-token KL estimators between the policy and a frozen reference.

This module owns the sample-based KL estimates used as a KL-to-reference
loss or reward penalty (spec §7.3 P2: "low_var_kl, 0.001"). They follow
J. Schulman, "Approximating KL divergence" (2020,
http://joschu.net/blog/kl-approx.html) and reproduce verl
``core_algos.kl_penalty_forward`` (v0.9.1) formula for formula, including
its clamps. To add an estimator, write a private ``_name(policy_logprobs,
ref_logprobs)`` and add it to ``KL_ESTIMATORS``.

All estimators take log-probabilities of the sampled tokens (sampled from
the policy) and estimate KL(policy || ref) per token. Shapes: B batch, T tokens.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

__all__ = ["KL_ESTIMATORS", "kl_penalty"]

# verl clamps the log-ratio before exp() and the k3 value after it; both
# bounds are verl's (kl_penalty_forward, "For numerical stability").
_LOG_RATIO_BOUND = 20.0
_K3_BOUND = 10.0


def _k1(policy_logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    return policy_logprobs - ref_logprobs


def _k2(policy_logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    return 0.5 * (policy_logprobs - ref_logprobs).square()


def _k3(policy_logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    ref_log_ratio = (ref_logprobs - policy_logprobs).clamp(-_LOG_RATIO_BOUND, _LOG_RATIO_BOUND)
    kl = ref_log_ratio.exp() - ref_log_ratio - 1
    return kl.clamp(-_K3_BOUND, _K3_BOUND)


KL_ESTIMATORS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "k1": _k1,
    "k2": _k2,
    "k3": _k3,
    "low_var_kl": _k3,
}
"""Estimator name -> ``(policy_logprobs (B, T), ref_logprobs (B, T)) -> (B, T)``."""


def kl_penalty(policy_logprobs: Tensor, ref_logprobs: Tensor, estimator: str) -> Tensor:
    """Per-token estimate of KL(policy || ref) from sampled-token log-probs.

    With ``d = policy_logprobs - ref_logprobs``:

    - ``"k1"``: ``d``. Unbiased, high variance, can be negative.
    - ``"k2"``: ``0.5 * d**2``. Biased, low variance, >= 0; its gradient is
      the gradient of the true KL in expectation.
    - ``"k3"`` / ``"low_var_kl"`` (the same function, two names as in verl):
      ``x = clamp(-d, -20, 20)``; ``exp(x) - x - 1`` clamped to ``[-10, 10]``.
      Unbiased before clamping, low variance, >= 0 (so the lower bound -10
      never binds). verl clamps exactly so. The upper bound binds for ``x``
      above about 2.61 or below about -11; there the gradient is zero, so
      such tokens stop being pulled back to the reference.

    verl's other names ("kl", "mse", "abs", "full" and the "+" straight-through
    suffix) are not provided.

    Args:
        policy_logprobs: log pi(a_t | s_t) under the policy, shape ``(B, T)``.
        ref_logprobs: log pi_ref(a_t | s_t) under the reference, shape ``(B, T)``.
        estimator: one of ``KL_ESTIMATORS``: "k1", "k2", "k3", "low_var_kl".

    Returns:
        Per-token KL estimates, shape ``(B, T)``; unmasked (reduce with
        ``aggregate_loss`` and the loss mask).

    Raises:
        ValueError: if ``estimator`` is unknown or the shapes differ.
    """
    estimate = KL_ESTIMATORS.get(estimator)
    if estimate is None:
        raise ValueError(f"Unknown KL estimator {estimator!r}; valid estimators are {sorted(KL_ESTIMATORS)}.")
    if policy_logprobs.shape != ref_logprobs.shape:
        raise ValueError(
            "kl_penalty expects policy_logprobs and ref_logprobs of the same shape; got "
            f"{tuple(policy_logprobs.shape)} and {tuple(ref_logprobs.shape)}."
        )
    return estimate(policy_logprobs, ref_logprobs)
