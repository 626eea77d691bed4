"""Compare rltrain.ops with verl's core_algos on identical random inputs.

Runs verl 0.9.1's ``compute_grpo_outcome_advantage``, ``compute_rloo_outcome_advantage``,
the registered "vanilla" policy loss, ``kl_penalty`` and ``agg_loss`` (plus
``logprobs_from_logits`` / ``entropy_from_logits``) next to ours, and prints
the max absolute difference of every output (values, metrics and gradients)
for every aggregation mode, clip setting and KL estimator, in float32 and
float64. Exits 1 if any difference exceeds the dtype's tolerance.

verl cannot live in the project venv (it pins transformers<5.11), so run this
with a separate interpreter that has verl; our ops need only torch and are
imported from this checkout. See bench/verl_compare.md for the venv recipe:

    /tmp/verlvenv/bin/python bench/verl_compare.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import verl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from verl.trainer.ppo import core_algos
from verl.utils import torch_functional as verl_F
from verl.workers.config import ActorConfig

from rltrain.ops import (
    AGG_MODES,
    KL_ESTIMATORS,
    aggregate_loss,
    entropy_from_logits,
    grpo_outcome_advantages,
    kl_penalty,
    ppo_clip_loss,
    rloo_advantages,
    token_logprobs,
)

SEED = 0
B, T, V = 64, 48, 512
# (clip_low, clip_high, dual_clip_c); None = no dual clip, run in verl as clip_ratio_c = inf.
CLIP_SETTINGS = [(0.2, 0.2, 3.0), (0.2, 0.28, 3.0), (0.2, 0.28, 10.0), (0.2, 0.28, None)]
# float64 differences come from verl's own constants, not from formula changes:
# masked_mean divides by count + 1e-8, seq-mean-token-mean by n_tokens + 1e-8,
# and a singleton GRPO group's std is a float32 1.0 (so 1 + 1e-6 rounds in float32).
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-7}


def max_abs_diff(ours, theirs) -> float:
    ours_t = torch.as_tensor(ours, dtype=torch.float64)
    theirs_t = torch.as_tensor(theirs, dtype=torch.float64)
    return (ours_t - theirs_t).abs().max().item()


def make_response_mask(gen: torch.Generator) -> torch.Tensor:
    """Right-padded (B, T) float mask with random lengths; row 3 empty, row 0 full."""
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    lengths[0], lengths[3] = T, 0
    return (torch.arange(T)[None, :] < lengths[:, None]).float()  # (B, T)


def make_groups(gen: torch.Generator) -> torch.Tensor:
    """Group ids, shuffled: 6 groups of 8, a group of 4 (tied later), 2 singletons, 5 pairs."""
    sizes = [8] * 6 + [4, 1, 1] + [2] * 5
    assert sum(sizes) == B
    ids = torch.repeat_interleave(torch.arange(len(sizes)) * 7 + 3, torch.tensor(sizes))
    return ids[torch.randperm(B, generator=gen)]


def compare_advantages(gen, dtype, response_mask, rows):
    group_ids = make_groups(gen)
    scores = torch.randint(0, 5, (B,), generator=gen).to(dtype) / 4  # ties within groups
    scores[group_ids == group_ids.unique()[6]] = 0.75  # one fully tied group (std 0)
    scores += torch.randn(B, generator=gen, dtype=dtype) * (torch.rand(B, generator=gen) < 0.5)
    # verl takes token-level rewards and sums them: put the score on the last valid token.
    last = (response_mask.sum(-1).long() - 1).clamp(min=0)
    token_rewards = torch.zeros(B, T, dtype=dtype)
    token_rewards[torch.arange(B), last] = scores
    scores = token_rewards.sum(-1)
    mask = response_mask.to(dtype)
    uid = np.array([f"uid-{g}" for g in group_ids.tolist()], dtype=object)
    for norm in (True, False):
        theirs, _ = core_algos.compute_grpo_outcome_advantage(token_rewards.clone(), mask, uid, norm_adv_by_std_in_grpo=norm)
        ours = grpo_outcome_advantages(scores, group_ids, norm_by_std=norm)[:, None] * mask
        rows.append((f"grpo advantages (norm_by_std={norm})", max_abs_diff(ours, theirs)))
    keep = torch.isin(group_ids, group_ids.unique()[torch.unique(group_ids, return_counts=True)[1] > 1])
    theirs, _ = core_algos.compute_rloo_outcome_advantage(token_rewards[keep].clone(), mask[keep], uid[keep.numpy()])
    ours = rloo_advantages(scores[keep], group_ids[keep])[:, None] * mask[keep]
    rows.append(("rloo advantages (groups of >= 2)", max_abs_diff(ours, theirs)))


def compare_kl(gen, dtype, rows):
    policy = -torch.rand(B, T, generator=gen, dtype=dtype) * 8
    ref = policy + torch.randn(B, T, generator=gen, dtype=dtype) * 3
    ref[0, :8] = policy[0, :8] + torch.tensor([-40.0, -25.0, -12.0, 2.7, 15.0, 21.0, 30.0, 80.0], dtype=dtype)
    for name in sorted(KL_ESTIMATORS):
        ours_policy = policy.clone().requires_grad_(True)
        theirs_policy = policy.clone().requires_grad_(True)
        ours = kl_penalty(ours_policy, ref, name)
        theirs = core_algos.kl_penalty(theirs_policy, ref, name)
        ours.sum().backward()
        theirs.sum().backward()
        clamped = (ours.detach() == 10.0).sum().item() if name in ("k3", "low_var_kl") else 0
        tag = f"kl_penalty {name}" + (f" ({clamped} tokens at the clamp 10)" if clamped else "")
        rows.append((tag, max_abs_diff(ours.detach(), theirs.detach())))
        rows.append((f"kl_penalty {name} grad", max_abs_diff(ours_policy.grad, theirs_policy.grad)))


def compare_agg(gen, dtype, response_mask, rows):
    loss_mat = torch.randn(B, T, generator=gen, dtype=dtype)
    mask = response_mask.to(dtype)
    for mode in sorted(AGG_MODES):
        ours = aggregate_loss(loss_mat, mask, mode)
        theirs = core_algos.agg_loss(loss_mat, mask, mode)
        rows.append((f"agg_loss {mode}", max_abs_diff(ours, theirs)))


def compare_policy_loss(gen, dtype, response_mask, rows):
    old = -torch.rand(B, T, generator=gen, dtype=dtype) * 5
    # Log-ratio noise: scale 0.3 on most tokens, 1.5 on a fifth, so that both the
    # PPO clip and the dual clip (ratio > 3 or > 10 with A < 0) bind on some tokens.
    scale = torch.where(torch.rand(B, T, generator=gen) < 0.2, 1.5, 0.3).to(dtype)
    policy = old + torch.randn(B, T, generator=gen, dtype=dtype) * scale
    policy[0, :4] = old[0, :4] + torch.tensor([-30.0, -21.0, 21.0, 30.0], dtype=dtype)  # clamp
    advantages = torch.randn(B, T, generator=gen, dtype=dtype)
    mask = response_mask.to(dtype)
    verl_loss_fn = core_algos.get_policy_loss_fn("vanilla")
    for clip_low, clip_high, dual_c in CLIP_SETTINGS:
        config = ActorConfig(
            strategy="fsdp",
            rollout_n=1,
            ppo_micro_batch_size_per_gpu=1,
            clip_ratio=clip_low,
            clip_ratio_low=clip_low,
            clip_ratio_high=clip_high,
            clip_ratio_c=float("inf") if dual_c is None else dual_c,
        )
        for mode in sorted(AGG_MODES):
            tag = f"ppo {mode} low={clip_low} high={clip_high} c={dual_c}"
            ours_policy = policy.clone().requires_grad_(True)
            theirs_policy = policy.clone().requires_grad_(True)
            ours, metrics = ppo_clip_loss(ours_policy, old, advantages, mask, clip_low, clip_high, dual_c, mode)
            theirs, verl_metrics = verl_loss_fn(old, theirs_policy, advantages, mask, mode, config)
            ours.backward()
            theirs.backward()
            diffs = [
                max_abs_diff(ours.detach(), theirs.detach()),
                max_abs_diff(ours_policy.grad, theirs_policy.grad),
                max_abs_diff(metrics["clip_frac"], verl_metrics["actor/pg_clipfrac"]),
                max_abs_diff(metrics["clip_frac_lower"], verl_metrics["actor/pg_clipfrac_lower"]),
                max_abs_diff(metrics["approx_kl"], verl_metrics["actor/ppo_kl"]),
            ]
            seen = f"clip_frac={metrics['clip_frac']:.3f} lower={metrics['clip_frac_lower']:.4f}"
            rows.append((f"{tag} ({seen}): loss/grad/clip_frac/lower/approx_kl", diffs))


def compare_logprobs(gen, dtype, rows):
    logits = torch.randn(4, 16, V, generator=gen, dtype=dtype) * 3
    labels = torch.randint(0, V, (4, 16), generator=gen)
    rows.append(
        (
            "token_logprobs vs logprobs_from_logits",
            max_abs_diff(token_logprobs(logits, labels), verl_F.logprobs_from_logits(logits, labels)),
        )
    )
    rows.append(
        (
            "entropy_from_logits",
            max_abs_diff(entropy_from_logits(logits), verl_F.entropy_from_logits(logits)),
        )
    )


def main() -> int:
    print(f"verl {verl.__version__}, torch {torch.__version__}, seed {SEED}, B={B} T={T} V={V}")
    worst_ok = True
    for dtype in (torch.float32, torch.float64):
        gen = torch.Generator().manual_seed(SEED)
        response_mask = make_response_mask(gen)
        rows: list[tuple[str, float | list[float]]] = []
        compare_advantages(gen, dtype, response_mask, rows)
        compare_kl(gen, dtype, rows)
        compare_agg(gen, dtype, response_mask, rows)
        compare_policy_loss(gen, dtype, response_mask, rows)
        compare_logprobs(gen, dtype, rows)
        tol = TOLERANCE[dtype]
        print(f"\n== {dtype} (tolerance {tol:g}) ==")
        for name, diff in rows:
            diffs = diff if isinstance(diff, list) else [diff]
            ok = all(d <= tol for d in diffs)
            worst_ok &= ok
            shown = " / ".join(f"{d:.3g}" for d in diffs)
            print(f"{'ok ' if ok else 'BAD'} {name}: {shown}")
    print("\nall within tolerance" if worst_ok else "\nSOME DIFFERENCES EXCEED TOLERANCE")
    return 0 if worst_ok else 1


if __name__ == "__main__":
    sys.exit(main())
