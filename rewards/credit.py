"""UserRL credit assignment for multi-turn trajectories (spec §1.7, §7.2 A1-A3).

A trajectory has assistant turns t = 1..T with turn rewards r_t. Two independent choices:

- the trajectory score S, which is group-normalised into the trajectory advantage A:
  `sum` (despite the name, the MEAN turn reward rounded to 4 decimals, as the authors' code computes it)
  or `r2g` (the discounted return from the first turn, sum_t gamma^(t-1) r_t);
- the turn credit c_t, which spreads A over the turns: `equalized` (c_t = 1, vanilla GRPO),
  `r2g` (reward-to-go, c_t = r_t + gamma c_(t+1)) or `em` (exponential mapping of r_t into [0.5, 1]).

Token advantages: a_i = c_t(i) m_i, rescaled so that the mean over credited tokens equals A:
a_i <- a_i A N / Z with Z = sum_i a_i and N = #{a_i != 0}; when Z = 0 every a_i is 0.

That last rule means a trajectory whose turn credits are all zero (turn-level `r2g` with all-zero rewards)
gets zero advantage even when A < 0: failures are never pushed down. `fix_zero_credit=True` instead gives
every policy token of such a trajectory the plain advantage A. The authors' behaviour is the default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from rltrain.ops import grpo_outcome_advantages

ScoreMethod = Literal["sum", "r2g"]
CreditMethod = Literal["equalized", "r2g", "em"]


def per_turn_rewards(turn_rewards: Sequence[float], num_turns: int | None = None) -> list[float]:
    """One reward per assistant turn t = 1..T (spec §1.7): a turn with no call -- the final plain-text answer,
    which the env never scored -- has reward 0 and still counts in T.

    `turn_rewards` holds the env's reward of every turn that made a call; `num_turns` is T, the number of
    assistant generations (`len(trajectory.turn_boundaries)`); None means every turn made a call.

    >>> per_turn_rewards([1.0], num_turns=2)
    [1.0, 0.0]
    """
    if num_turns is None:
        return list(turn_rewards)
    return (list(turn_rewards) + [0.0] * num_turns)[:num_turns]


def trajectory_score(turn_rewards: Sequence[float], method: ScoreMethod, gamma: float = 0.8,
                     num_turns: int | None = None) -> float:
    """The trajectory score S (spec §1.7) over T = `num_turns` assistant turns (see `per_turn_rewards`).

    >>> trajectory_score([0.0, 1.0, 0.5], "sum")  # mean, not sum: (0 + 1 + 0.5) / 3
    0.5
    >>> trajectory_score([1.0], "sum", num_turns=2)  # a final plain-text answer is turn 2, reward 0
    0.5
    >>> trajectory_score([0.0, 1.0, 0.5], "r2g", gamma=0.8)  # 0 + 0.8 * 1 + 0.64 * 0.5
    1.12
    """
    turn_rewards = per_turn_rewards(turn_rewards, num_turns)
    if method == "sum":
        return round(sum(turn_rewards) / len(turn_rewards), 4) if turn_rewards else 0.0
    if method == "r2g":
        return float(sum(gamma**t * r for t, r in enumerate(turn_rewards)))
    raise ValueError(f"unknown trajectory score method {method!r}; use 'sum' or 'r2g'")


def turn_credits(turn_rewards: Sequence[float], method: CreditMethod, gamma: float = 0.8, k: float = 2.0) -> list[float]:
    """The turn credits c_t (spec §1.7).

    >>> turn_credits([0.0, 1.0, 0.0], "r2g", gamma=0.5)  # c_3 = 0, c_2 = 1 + 0.5 * 0, c_1 = 0 + 0.5 * 1
    [0.5, 1.0, 0.0]
    >>> turn_credits([0.0, 1.0], "em", k=2.0)  # 0.5 + 0.5 (1 - e^-2r) / (1 - e^-2)
    [0.5, 1.0]
    """
    if method == "equalized":
        return [1.0] * len(turn_rewards)
    if method == "r2g":
        credits, running = [], 0.0
        for r in reversed(turn_rewards):
            running = r + gamma * running
            credits.append(running)
        return credits[::-1]
    if method == "em":
        return [round(0.5 + 0.5 * (1 - math.exp(-k * r)) / (1 - math.exp(-k)), 4) for r in turn_rewards]
    raise ValueError(f"unknown turn credit method {method!r}; use 'equalized', 'r2g' or 'em'")


def token_credits(turn_boundaries: Sequence[int], credits: Sequence[float], length: int) -> list[float]:
    """Per response token, the credit of the turn it belongs to: turn t spans [boundary_t, boundary_(t+1)).

    The spans include environment tokens between turns; the loss mask zeroes them later.
    """
    if len(turn_boundaries) != len(credits):
        raise ValueError(f"{len(turn_boundaries)} turn boundaries but {len(credits)} credits")
    if turn_boundaries and turn_boundaries[0] != 0:
        raise ValueError(f"the first turn must start at response token 0, got {turn_boundaries[0]}")
    out = [0.0] * length
    for t, (start, credit) in enumerate(zip(turn_boundaries, credits)):
        end = turn_boundaries[t + 1] if t + 1 < len(turn_boundaries) else length
        out[start:end] = [credit] * (end - start)
    return out


def multiturn_advantages(token_credit: Tensor, loss_mask: Tensor, scores: Tensor, group_ids: Tensor,
                         norm_by_std: bool = True, fix_zero_credit: bool = False) -> Tensor:
    """UserRL's `grpo_multiturn` token advantages (spec §1.7 steps 1-4).

    Args:
        token_credit: (B, T) turn credit of each response token.
        loss_mask: (B, T) bool, policy tokens.
        scores: (B,) trajectory scores S.
        group_ids: (B,) which prompt each trajectory answers.
        norm_by_std: divide by the group's std (+1e-6), as `norm_adv_by_std_in_grpo`.
        fix_zero_credit: give A to every policy token of a trajectory whose credited tokens sum to 0.

    Returns:
        (B, T) advantages; each row's mean over credited tokens equals the row's group-normalised score.
    """
    adv = grpo_outcome_advantages(scores, group_ids, norm_by_std=norm_by_std)  # (B,)
    credited = token_credit * loss_mask  # (B, T)
    total = credited.sum(dim=1)  # Z, (B,)
    count = (credited != 0).sum(dim=1)  # N, (B,)
    scale = torch.where(total != 0, adv * count / torch.where(total != 0, total, torch.ones_like(total)), torch.zeros_like(adv))
    out = credited * scale[:, None]  # (B, T)
    if fix_zero_credit:
        out = torch.where((total == 0)[:, None], adv[:, None] * loss_mask, out)
    return out
