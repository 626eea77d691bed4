"""UserRL credit assignment against hand-computed values (spec §1.7, §7.2 A1-A3)."""

from __future__ import annotations

import math

import pytest
import torch

from rewards.credit import multiturn_advantages, per_turn_rewards, token_credits, trajectory_score, turn_credits


def test_scores() -> None:
    """A1: 'sum' is the mean turn reward rounded to 4 dp; 'r2g' is sum_t gamma^(t-1) r_t."""
    assert trajectory_score([1.0, 0.0, 0.0], "sum") == 0.3333
    assert trajectory_score([], "sum") == 0.0
    assert trajectory_score([0.2, 0.0, 1.0], "r2g", gamma=0.8) == pytest.approx(0.2 + 0.64)
    with pytest.raises(ValueError, match="use 'sum' or 'r2g'"):
        trajectory_score([1.0], "mean")


def test_credits() -> None:
    """A2. R2G, gamma 0.8, r = (0.5, 0, 1): c3 = 1, c2 = 0 + 0.8 = 0.8, c1 = 0.5 + 0.64 = 1.14.
    EM, k 2, r = 0.5: 0.5 + 0.5 (1 - e^-1) / (1 - e^-2) = 0.5 + 0.5 * 0.63212 / 0.86466 = 0.86553."""
    assert turn_credits([0.5, 0.0, 1.0], "equalized") == [1.0, 1.0, 1.0]
    assert turn_credits([0.5, 0.0, 1.0], "r2g", gamma=0.8) == pytest.approx([1.14, 0.8, 1.0])
    assert turn_credits([0.5], "em", k=2.0) == [0.8655]
    assert turn_credits([0.0, 0.0], "em") == [0.5, 0.5]  # EM never gives zero credit
    assert turn_credits([1.0, 0.0, 0.0], "r2g", gamma=0.8) == pytest.approx([1.0, 0.0, 0.0])  # nothing after the last reward
    with pytest.raises(ValueError, match="use 'equalized', 'r2g' or 'em'"):
        turn_credits([1.0], "uniform")


def test_token_credits_follow_turn_spans() -> None:
    assert token_credits([0, 3], [2.0, 5.0], 5) == [2.0, 2.0, 2.0, 5.0, 5.0]
    with pytest.raises(ValueError, match="must start at response token 0"):
        token_credits([1, 3], [1.0, 1.0], 5)


def test_multiturn_advantages_hand_computed() -> None:
    """A3. One group of two trajectories, scores (1, 0): A = +-0.5 / (0.70711 + 1e-6) = +-0.70711.
    Row 0: credits (2, 2, [env 9], 1) -> a = c*m = (2, 2, 0, 1): Z = 5, N = 3, a <- a * A * 3 / 5.
    Row 1: credits all 1 on 2 policy tokens: a = A."""
    A = 0.5 / (math.sqrt(0.5) + 1e-6)
    credit = torch.tensor([[2.0, 2.0, 9.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0, 1], [1, 1, 0, 0]], dtype=torch.bool)
    out = multiturn_advantages(credit, mask, torch.tensor([1.0, 0.0]), torch.tensor([0, 0]))
    torch.testing.assert_close(out[0], torch.tensor([2 * A * 3 / 5, 2 * A * 3 / 5, 0.0, A * 3 / 5]))
    torch.testing.assert_close(out[1], torch.tensor([-A, -A, 0.0, 0.0]))
    assert out[0][mask[0]].mean().item() == pytest.approx(A, rel=1e-5)  # mean over credited tokens = A


def test_zero_credit_edge_case_and_its_fix() -> None:
    """Turn-level R2G with all-zero rewards gives Z = 0: the authors' rule zeroes the row even though A < 0."""
    credit = torch.tensor([[1.0, 1.0], [0.0, 0.0]])  # row 1: a failed trajectory, every credit 0
    mask = torch.ones(2, 2, dtype=torch.bool)
    scores, groups = torch.tensor([1.0, 0.0]), torch.tensor([0, 0])
    A = 0.5 / (math.sqrt(0.5) + 1e-6)
    assert multiturn_advantages(credit, mask, scores, groups)[1].abs().sum() == 0
    fixed = multiturn_advantages(credit, mask, scores, groups, fix_zero_credit=True)
    torch.testing.assert_close(fixed[1], torch.tensor([-A, -A]))


def test_matches_a_loop_on_random_input() -> None:
    torch.manual_seed(0)
    B, T = 6, 7
    credit = torch.rand(B, T).round(decimals=1)
    mask = torch.rand(B, T) > 0.3
    scores, groups = torch.rand(B), torch.tensor([0, 0, 0, 1, 1, 2])
    out = multiturn_advantages(credit, mask, scores, groups, norm_by_std=False)
    for b in range(B):
        members = [i for i in range(B) if groups[i] == groups[b]]
        mean = sum(float(scores[i]) for i in members) / len(members) if len(members) > 1 else 0.0
        adv = float(scores[b]) - mean
        a = [float(credit[b, i]) * float(mask[b, i]) for i in range(T)]
        z, n = sum(a), sum(x != 0 for x in a)
        want = [x * adv * n / z if z != 0 else 0.0 for x in a]
        torch.testing.assert_close(out[b], torch.tensor(want), rtol=1e-5, atol=1e-6)


def test_sum_score_counts_the_final_no_call_turn() -> None:
    """Spec §1.7: T includes a final no-tool turn, whose reward is 0. A call rewarded 1.0 and then a
    plain-text answer (which the env never scores, so `turn_rewards` has one entry for two turns) is
    S = round((1 + 0) / 2, 4) = 0.5, not 1.0."""
    from rltrain.types import Trajectory

    t = Trajectory(task_id="q", group_id=0, env="test", prompt_ids=[1])
    t.append([5, 5], policy=True, logprobs=[-0.1, -0.1])  # turn 1: a tool call ...
    t.turn_rewards.append(1.0)  # ... rewarded 1.0 by the env
    t.append([6], policy=False)  # the tool result
    t.append([7, 7], policy=True, logprobs=[-0.1, -0.1])  # turn 2: a plain-text answer, no call, no env step
    assert t.turn_rewards == [1.0] and len(t.turn_boundaries) == 2
    assert trajectory_score(t.turn_rewards, "sum", num_turns=len(t.turn_boundaries)) == 0.5
    assert trajectory_score(t.turn_rewards, "r2g", gamma=0.8, num_turns=2) == 1.0  # a trailing 0 adds nothing
    assert per_turn_rewards([1.0], num_turns=2) == [1.0, 0.0]
    assert per_turn_rewards([0.5, 1.0], num_turns=1) == [0.5]  # never more rewards than turns
    assert per_turn_rewards([0.5, 1.0]) == [0.5, 1.0]
    assert trajectory_score([1.0], "sum") == 1.0  # without T: every turn made a call
