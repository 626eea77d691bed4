"""GRPO's batch construction and loss, against numbers worked out by hand (spec §7.2 A4, §7.3 P1-P2)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from rltrain.algorithms import ALGORITHMS, LossInputs, build_algorithm
from rltrain.batching import fill_to
from rltrain.config import load_config
from rltrain.types import Trajectory

PAD0 = SimpleNamespace(pad_token_id=0, eos_token_id=0)  # GRPO needs only the pad id of the tokenizer


def traj(group: int, reward: float, prompt: list[int], response: list[int], mask: list[int] | None = None) -> Trajectory:
    mask = mask or [1] * len(response)
    return Trajectory(task_id=f"t{group}", group_id=group, env="test", prompt_ids=prompt, response_ids=response,
                      loss_mask=mask, rollout_logprobs=[-0.5 * m for m in mask], reward=reward)


def grpo(*overrides: str):
    return build_algorithm(load_config(None, list(overrides)).algorithm)


def test_make_batch_hand_computed() -> None:
    """Group 0 scores (1, 0): mean 0.5, unbiased std sqrt(0.5) = 0.70711, so A = +-0.5/0.70711 = +-0.70711.
    Group 1 scores (2, 2, 2): std 0 -> A = 0. Advantages sit on response tokens only, aligned with input_ids."""
    trajectories = [traj(0, 1.0, [5, 6], [7, 8]), traj(0, 0.0, [5, 6], [9]),
                    traj(1, 2.0, [4], [3]), traj(1, 2.0, [4], [3, 2]), traj(1, 2.0, [4], [1])]
    batch, metrics = grpo().make_batch(trajectories, PAD0)
    a = 0.5 / (math.sqrt(0.5) + 1e-6)
    assert batch.input_ids.tolist()[0] == [5, 6, 7, 8] and batch.input_ids.tolist()[1] == [5, 6, 9, 0]
    assert batch.loss_mask.tolist()[1] == [False, False, True, False]
    torch.testing.assert_close(batch.advantages[0], torch.tensor([0, 0, a, a]))
    torch.testing.assert_close(batch.advantages[1], torch.tensor([0, 0, -a, 0]))
    assert batch.advantages[2:].abs().sum() == 0
    torch.testing.assert_close(batch.rollout_logprobs[0], torch.tensor([0, 0, -0.5, -0.5]))
    assert metrics["grpo/zero_std_group_frac"] == 0.5


def test_no_std_normalisation() -> None:
    batch, _ = grpo("algorithm.grpo.norm_adv_by_std=false").make_batch([traj(0, 3.0, [1], [2]), traj(0, 1.0, [1], [2])], PAD0)
    torch.testing.assert_close(batch.advantages[:, 1], torch.tensor([1.0, -1.0]))


def test_environment_tokens_get_no_advantage() -> None:
    batch, _ = grpo().make_batch([traj(0, 1.0, [1], [2, 3, 4], mask=[1, 0, 1]), traj(0, 0.0, [1], [2])], PAD0)
    assert batch.advantages[0, 2] == 0 and batch.advantages[0, 1] != 0 and batch.advantages[0, 3] != 0


def inputs(policy, old, adv, mask, ref=None) -> LossInputs:
    t = lambda x: torch.tensor([x], dtype=torch.float32)  # noqa: E731
    return LossInputs(policy_logprobs=t(policy), old_logprobs=t(old), rollout_logprobs=t(old),
                      ref_logprobs=None if ref is None else t(ref), entropy=None, advantages=t(adv),
                      loss_mask=torch.tensor([mask], dtype=torch.bool))


def test_loss_hand_computed() -> None:
    """Two tokens, ratio r = exp(0.5) = 1.6487 and exp(-1) = 0.3679, advantages +1 and -1, clip 0.2/0.2:
    token 1: max(-1.6487, -1.2) = -1.2; token 2: max(0.3679, 0.8) = 0.8, dual clip min(0.8, 3) = 0.8.
    token-mean = (-1.2 + 0.8) / 2 = -0.2; both tokens clipped."""
    loss, metrics = grpo().loss(inputs([0.5, -1.0], [0.0, 0.0], [1.0, -1.0], [True, True]))
    assert loss.item() == pytest.approx(-0.2, abs=1e-6)
    assert metrics["learner/clip_frac"].item() == pytest.approx(1.0)


def test_kl_term_added_only_with_reference() -> None:
    """k1 estimator, beta 0.5: KL per token = policy - ref = 0.2 -> loss adds 0.5 * 0.2 = 0.1 (ratio 1, A 0)."""
    algo = grpo("algorithm.grpo.kl_coef=0.5", "algorithm.grpo.kl_estimator=k1")
    assert algo.needs_reference and not grpo().needs_reference
    loss, metrics = algo.loss(inputs([-1.0], [-1.0], [0.0], [True], ref=[-1.2]))
    assert loss.item() == pytest.approx(0.1, abs=1e-6) and metrics["learner/kl"].item() == pytest.approx(0.2, abs=1e-6)


def test_filler_rows_are_masked() -> None:
    batch, _ = grpo().make_batch([traj(0, 1.0, [1], [2, 3]), traj(0, 0.0, [1], [2])], PAD0)
    full = fill_to(batch, 4)
    assert len(full) == 4 and not full.loss_mask[2:].any() and full.advantages[2:].abs().sum() == 0
    # two real tokens each (one predicted position, so the forward pass is well defined), nothing more: a
    # micro-batch of fillers alone is trimmed to 2 positions instead of costing a copy of row 0
    assert full.attention_mask[2:].tolist() == [[1, 1, 0], [1, 1, 0]]
    assert full.input_ids[2:, :2].tolist() == [full.input_ids[0, :2].tolist()] * 2
    assert full.select(torch.tensor([2, 3])).input_ids.shape == (2, 2)


def test_registry() -> None:
    assert "grpo" in ALGORITHMS
    with pytest.raises(ValueError, match="registered twice"):
        ALGORITHMS.register("grpo")(object)
    with pytest.raises(KeyError, match="registered: grpo"):
        ALGORITHMS.get("reinforce")


def multiturn(rewards: list[float], group: int, turn_len: int = 2, env_len: int = 1) -> Trajectory:
    """A trajectory of len(rewards) turns: each turn `turn_len` policy tokens, then `env_len` environment tokens."""
    t = Trajectory(task_id="m", group_id=group, env="test", prompt_ids=[1], turn_rewards=list(rewards))
    for i in range(len(rewards)):
        t.append([5] * turn_len, policy=True, logprobs=[-0.1] * turn_len)
        if i < len(rewards) - 1:
            t.append([6] * env_len, policy=False)
    return t


def test_multiturn_r2g_credit_hand_computed() -> None:
    """Spec §1.7 with trajectory_score=sum and turn_credit=r2g, gamma 0.5, one group of two:
    traj 0 rewards (0, 1): S = 0.5, credits c2 = 1, c1 = 0 + 0.5 = 0.5; traj 1 rewards (0, 0): S = 0, credits 0.
    A0 = +0.5 / (0.70711 + 1e-6) = 0.70711. Policy tokens of traj 0: credits (0.5, 0.5, 1, 1): Z = 3, N = 4,
    so tokens get 0.5 * A0 * 4/3 and 1 * A0 * 4/3. Traj 1: Z = 0 -> all zero (the authors' edge case)."""
    algo = grpo("algorithm.grpo.trajectory_score=sum", "algorithm.grpo.turn_credit=r2g", "algorithm.grpo.gamma=0.5")
    batch, _ = algo.make_batch([multiturn([0.0, 1.0], 0), multiturn([0.0, 0.0], 0)], PAD0)
    A = 0.5 / (math.sqrt(0.5) + 1e-6)
    # row layout: prompt [1], turn 1 (2 tokens), env (1), turn 2 (2 tokens)
    torch.testing.assert_close(batch.advantages[0], torch.tensor([0, 0.5 * A * 4 / 3, 0.5 * A * 4 / 3, 0, A * 4 / 3, A * 4 / 3]))
    assert batch.advantages[1].abs().sum() == 0
    fixed, _ = grpo("algorithm.grpo.trajectory_score=sum", "algorithm.grpo.turn_credit=r2g", "algorithm.grpo.gamma=0.5",
                    "algorithm.grpo.fix_zero_credit=true").make_batch([multiturn([0.0, 1.0], 0), multiturn([0.0, 0.0], 0)], PAD0)
    torch.testing.assert_close(fixed.advantages[1], torch.tensor([0, -A, -A, 0, -A, -A]))


def test_equalized_credit_is_outcome_grpo() -> None:
    """Equalized credit with the accountant's reward reduces to plain GRPO on every policy token."""
    trajectories = [multiturn([0.0, 1.0], 0), multiturn([1.0, 1.0], 0)]
    trajectories[0].reward, trajectories[1].reward = 0.0, 2.0
    batch, _ = grpo().make_batch(trajectories, PAD0)
    A = 1.0 / (math.sqrt(2.0) + 1e-6)
    torch.testing.assert_close(batch.advantages[1][batch.loss_mask[1]], torch.full((4,), A))
    torch.testing.assert_close(batch.advantages[0][batch.loss_mask[0]], torch.full((4,), -A))


def test_sum_score_counts_the_final_no_call_turn() -> None:
    """Spec §1.7: T counts every assistant turn; rewards [1.0] then a plain-text answer score (1 + 0) / 2 = 0.5."""
    traj = multiturn([1.0, 0.0], 0)
    traj.turn_rewards = [1.0]
    assert grpo("algorithm.grpo.trajectory_score=sum").group_score(traj) == 0.5
