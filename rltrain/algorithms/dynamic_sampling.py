"""DAPO dynamic sampling (arXiv 2503.14476 §3.2; spec §4.5 "filter_groups"), as a general GRPO option.

A group whose scores are all equal has zero advantage everywhere: it costs a learner pass and teaches nothing.
With `algorithm.grpo.dynamic_sampling`, each step keeps only groups with signal (score std > 0) and generates
further rounds of prompts until `prompts_per_step` such groups are collected, or `max_sampling_rounds` rounds have
run. A batch that never fills trains on the groups it has (none: the step is skipped, as for a step whose
trajectories all failed), and says so in its metrics; verl raises instead, which ends a long run over one
unlucky step.

Failed trajectories (infrastructure, never scored) are removed before groups are judged; a group left with fewer
than 2 scored samples has no usable baseline and is dropped too. The refill loop is `fill_batch`: the driver
gives it a function that generates and scores one round, and a budget check that may raise `BudgetExceeded`
between rounds (a budget hit mid-refill stops the run cleanly: the exception reaches the driver's stop path).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rltrain.types import Trajectory

logger = logging.getLogger(__name__)


def group_score(traj: Trajectory) -> float:
    return float(traj.reward if traj.reward is not None else 0.0)


def split_groups(trajectories: list[Trajectory], min_samples: int = 2,
                 score: Callable[[Trajectory], float] = group_score) -> tuple[list[list[Trajectory]], int, int]:
    """(groups with signal, groups dropped for std 0, groups dropped for too few scored samples), in first-seen order.

    `score` is what GRPO normalises (the reward, or a turn-reward score: `algorithm.grpo.trajectory_score`)."""
    groups: dict[int, list[Trajectory]] = {}
    for traj in trajectories:
        if not traj.failed and traj.reward is not None:
            groups.setdefault(traj.group_id, []).append(traj)
        else:
            groups.setdefault(traj.group_id, [])
    kept, flat, small = [], 0, 0
    for members in groups.values():
        if len(members) < min_samples:
            small += 1
        elif len({score(t) for t in members}) == 1:
            flat += 1
        else:
            kept.append(members)
    return kept, flat, small


def fill_batch(generate_round: Callable[[int], list[Trajectory]], prompts_needed: int, max_rounds: int,
               first_round: list[Trajectory] | None = None,
               check_budget: Callable[[], Any] | None = None,
               score: Callable[[Trajectory], float] = group_score) -> tuple[list[Trajectory], dict[str, float]]:
    """Collect `prompts_needed` groups with signal; returns (trajectories, metrics).

    Args:
        generate_round: `round -> scored trajectories` for one round of `prompts_per_step` fresh prompts (round 0 is
            the step's usual rollout). Group ids may repeat across rounds; they are renumbered here.
        prompts_needed: groups wanted (`trainer.prompts_per_step`).
        max_rounds: `algorithm.grpo.max_sampling_rounds`.
        first_round: round 0 when it was already generated (with `async_rollout`, submitted during the last update).
        check_budget: called after every round; raises (e.g. `BudgetExceeded`) to stop the run cleanly, or returns
            True to stop refilling (a budget reached: the step trains on what it has, then the driver stops the run).
        score: the per-trajectory score whose spread decides (`GRPO.group_score`).

    The returned trajectories hold whole groups, contiguous, with group ids 0..k-1, and at most `prompts_needed`
    groups (extra groups of the last round are dropped, as verl does). Metrics: `dapo/rounds`, `dapo/kept_groups`,
    `dapo/dropped_zero_std_groups`, `dapo/dropped_small_groups`, `dapo/batch_fill` (kept / needed),
    `dapo/unfilled` (1 when the rounds ran out), `dapo/generated_trajectories`, `dapo/budget_stop` (1 when
    `check_budget` ended the refill).
    """
    if prompts_needed < 1 or max_rounds < 1:
        raise ValueError(f"fill_batch needs prompts_needed >= 1 and max_rounds >= 1, got {prompts_needed}, {max_rounds}")
    kept: list[list[Trajectory]] = []
    flat = small = generated = rounds = 0
    budget_stop = False
    while len(kept) < prompts_needed and rounds < max_rounds and not budget_stop:
        batch = first_round if rounds == 0 and first_round is not None else generate_round(rounds)
        rounds += 1
        generated += len(batch)
        groups, n_flat, n_small = split_groups(batch, score=score)
        kept += groups
        flat, small = flat + n_flat, small + n_small
        if check_budget is not None:
            budget_stop = check_budget() is True
    kept = kept[:prompts_needed]
    out: list[Trajectory] = []
    for new_id, members in enumerate(kept):
        for traj in members:
            traj.group_id = new_id
            out.append(traj)
    unfilled = len(kept) < prompts_needed
    if unfilled:
        logger.warning("dynamic sampling: only %d of %d groups with reward signal after %d rounds "
                       "(%s); training on those", len(kept), prompts_needed, rounds,
                       "a budget was reached" if budget_stop else "algorithm.grpo.max_sampling_rounds")
    return out, {"dapo/rounds": float(rounds), "dapo/kept_groups": float(len(kept)),
                 "dapo/dropped_zero_std_groups": float(flat), "dapo/dropped_small_groups": float(small),
                 "dapo/batch_fill": len(kept) / prompts_needed, "dapo/unfilled": float(unfilled),
                 "dapo/generated_trajectories": float(generated), "dapo/budget_stop": float(budget_stop)}
