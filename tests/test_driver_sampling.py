"""The driver's step-side logic without Ray: the versioned rows it writes (issue 15) and the dynamic-sampling refill
of a step (issue 14; spec §4.5 filter_groups, §7.2 A4), driven by a fake round generator (logic with no engine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actors.user import load_replay
from rltrain.algorithms.grpo import GRPO
from rltrain.checkpoint import trim_jsonl
from rltrain.config.grpo import GRPOConfig
from rltrain.data.schema import FORMAT_VERSION, read_trajectories
from rltrain.driver import pooled_means, sample_step, write_rows
from rltrain.types import Trajectory
from tests.data.test_schema import _trajectory
from tests.test_dynamic_sampling import group


def rounds_of(*rounds: list[Trajectory]):
    """A fake `play_round` returning the given rounds in order, and the list of rounds it was asked for."""
    asked: list[int] = []

    def play(r: int) -> list[Trajectory]:
        asked.append(r)
        return rounds[r]

    return play, asked


# -- issue 15: the rows of runs/<name>/trajectories.jsonl --------------------------------------------------------------

def test_rows_round_trip_and_keep_the_keys_readers_use(tmp_path: Path) -> None:
    traj = _trajectory()
    traj.user_calls = [{"key": "fg-7#0/0", "text": "Oui ✓"}]
    path = tmp_path / "trajectories.jsonl"
    assert write_rows(path, [traj, traj], 0, step=1) == 2
    assert write_rows(path, [traj], 2, step=2, sampling_round=1) == 1
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(line.isascii() for line in path.read_text().splitlines())  # readers open it in the locale's encoding
    assert [r["format_version"] for r in rows] == [FORMAT_VERSION] * 3 and FORMAT_VERSION == 1
    assert [r["step"] for r in rows] == [1, 1, 2] and rows[2]["sampling_round"] == 1 and "sampling_round" not in rows[0]
    assert [r["unique_trajectory_id"] for r in rows] == ["function_gym/fg-7#3.0", "function_gym/fg-7#3.1", "function_gym/fg-7#3.2"]
    # the flat token-level keys the integration tests and scripts read (test_training, test_resume, test_fault_tolerance)
    assert rows[0]["weight_version"] == 2 and rows[0]["response_ids"] == [4, 5, 6, 7, 8] and rows[0]["failure"] is None
    assert "messages" not in rows[0] and rows[0]["conversation"][-1] == {"role": "assistant", "content": "The answer is 5."}
    assert list(read_trajectories(path)) == [traj, traj, traj]  # lossless: the same Trajectory back
    assert load_replay(path) == {"fg-7#0/0": {"Oui ✓"}}  # users.replay_from
    trim_jsonl(path, 1)  # the trim on resume
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 1]


def test_eval_file_is_rewritten_not_appended(tmp_path: Path) -> None:
    path = tmp_path / "eval_before.jsonl"
    write_rows(path, [_trajectory()] * 3, 0, mode="w")
    write_rows(path, [_trajectory()], 0, mode="w")
    assert list(read_trajectories(path)) == [_trajectory()]


# -- issue 14: dynamic sampling in the step ---------------------------------------------------------------------------

def test_without_dynamic_sampling_one_round_is_the_batch_flat_groups_included() -> None:
    first = group(0, [1.0, 1.0], "a") + group(1, [0.0, 1.0], "a")
    play, asked = rounds_of(first)
    generated, train_on, metrics = sample_step(play, GRPO(GRPOConfig()), prompts_needed=2)
    assert asked == [0] and generated == first and train_on == first and metrics == {}


def test_refill_rounds_until_prompts_per_step_groups_have_signal() -> None:
    play, asked = rounds_of(
        group(0, [1.0, 1.0], "a") + group(1, [0.0, 1.0], "a"),            # 1 with signal, 1 flat (std 0)
        group(0, [0.5, 0.5], "b") + group(1, [0.25, None], "b"),          # flat; 1 scored sample left: no baseline
        group(0, [0.0, 0.75], "c") + group(1, [1.0, 0.0], "c"),           # 2 with signal: one too many
        group(0, [0.0, 1.0], "d"))                                        # never asked for
    grpo = GRPO(GRPOConfig(dynamic_sampling=True, max_sampling_rounds=10))
    generated, train_on, m = sample_step(play, grpo, prompts_needed=2)
    assert asked == [0, 1, 2]
    assert len(generated) == 12  # every round's episodes, kept or not (they are all written and metered)
    # the first two groups with signal, renumbered 0..1 and contiguous; the extra group of the last round is dropped
    assert [(t.task_id, t.group_id) for t in train_on] == [("aq1", 0), ("aq1", 0), ("cq0", 1), ("cq0", 1)]
    assert m["dapo/rounds"] == 3 and m["dapo/kept_groups"] == 2 and m["dapo/dropped_zero_std_groups"] == 2
    assert m["dapo/dropped_small_groups"] == 1 and m["dapo/batch_fill"] == 1.0 and m["dapo/unfilled"] == 0.0
    assert m["dapo/generated_trajectories"] == 12 and m["dapo/budget_stop"] == 0.0


def test_a_batch_that_never_fills_stops_at_max_sampling_rounds() -> None:
    flat = [group(0, [1.0, 1.0], str(i)) + group(1, [0.0, 0.0], str(i)) for i in range(4)]
    play, asked = rounds_of(*flat)
    grpo = GRPO(GRPOConfig(dynamic_sampling=True, max_sampling_rounds=3))
    generated, train_on, m = sample_step(play, grpo, prompts_needed=2)
    assert asked == [0, 1, 2] and len(generated) == 12
    assert train_on == []  # the driver skips the update (dapo/skipped_update)
    assert m["dapo/unfilled"] == 1.0 and m["dapo/kept_groups"] == 0 and m["dapo/batch_fill"] == 0.0
    assert m["dapo/dropped_zero_std_groups"] == 6


def test_a_partly_filled_batch_trains_on_what_it_has() -> None:
    play, asked = rounds_of(group(0, [1.0, 1.0], "a"), group(0, [0.0, 1.0], "b"))
    _, train_on, m = sample_step(play, GRPO(GRPOConfig(dynamic_sampling=True, max_sampling_rounds=2)), prompts_needed=3)
    assert asked == [0, 1] and [t.task_id for t in train_on] == ["bq0", "bq0"] and m["dapo/batch_fill"] == pytest.approx(1 / 3)


def test_a_budget_reached_mid_refill_ends_the_refill() -> None:
    play, asked = rounds_of(group(0, [0.0, 1.0], "a"), group(0, [0.0, 1.0], "b"))
    spent = []

    def stop() -> bool:  # the driver's: `budget_reached is not None` after the round was metered
        spent.append(len(asked))
        return True

    _, train_on, m = sample_step(play, GRPO(GRPOConfig(dynamic_sampling=True)), prompts_needed=2, stop=stop)
    assert asked == [0] and spent == [1] and len(train_on) == 2
    assert m["dapo/budget_stop"] == 1.0 and m["dapo/unfilled"] == 1.0


def test_the_spread_is_judged_on_grpo_group_score() -> None:
    """trajectory_score=sum: equal rewards but different turn-reward sums is a group with signal."""
    a, b = group(0, [1.0, 1.0], "a")
    a.turn_rewards, b.turn_rewards = [0.5, 0.5], [0.0, 0.5]
    play, asked = rounds_of([a, b])
    grpo = GRPO(GRPOConfig(dynamic_sampling=True, max_sampling_rounds=2, trajectory_score="sum"))
    _, train_on, m = sample_step(play, grpo, prompts_needed=1)
    assert asked == [0] and train_on == [a, b] and m["dapo/kept_groups"] == 1


def test_refill_rounds_draw_fresh_prompts_and_rows_continue_after_resume(tmp_path: Path) -> None:
    """`Trainer._submit` / `_record` without Ray: a bare Trainer with a fake env and rollout group (no engine)."""
    from types import SimpleNamespace

    from rltrain.driver import Trainer

    seeds: list[int] = []
    env = SimpleNamespace(tasks=lambda split, n, seed: seeds.append(seed) or [f"{seed}-{i}" for i in range(n)])
    trainer = Trainer.__new__(Trainer)
    trainer.cfg = SimpleNamespace(trainer=SimpleNamespace(seed=3, prompts_per_step=2, group_size=4))
    trainer.prep = SimpleNamespace(env=env, algorithm=GRPO(GRPOConfig()))
    trainer.rollouts = SimpleNamespace(submit=lambda tasks, **kw: tasks)
    trainer.lengths, trainer.run_dir, trainer._rows = None, tmp_path, None
    trainer._submit(5)
    trainer._submit(5, 1)
    trainer._submit(5, 2)
    trainer._submit(6)
    base = 3 * 1_000_003
    assert seeds == [base + 5, base + 5 + 2**32, base + 5 + 2**33, base + 6]  # round 0 keeps the old seeds
    write_rows(tmp_path / "trajectories.jsonl", [_trajectory()] * 2, 0, step=1)  # what a resumed run finds
    trainer._record(2, [_trajectory()], sampling_round=0)
    rows = [json.loads(line) for line in (tmp_path / "trajectories.jsonl").read_text().splitlines()]
    assert rows[-1]["unique_trajectory_id"].endswith(".2") and rows[-1]["step"] == 2 and trainer._rows == 3


def test_audit_means_of_several_rounds_are_pooled_by_episode_count() -> None:
    """Issue 17's `user/*` audit metrics are per-episode means; over refill rounds they weigh by episodes."""
    parts = [(4, {"user/audit_spoiled_rate": 0.5, "user/invalid_reply_rate": 0.25}),  # 2 of 4 spoiled
             (0, {}),                                                                # a round with no user calls
             (2, {"user/audit_spoiled_rate": 0.0, "user/invalid_reply_rate": 1.0})]
    assert pooled_means(parts) == {"user/audit_spoiled_rate": 2 / 6, "user/invalid_reply_rate": 3 / 6}
    assert pooled_means([(0, {})]) == {}
