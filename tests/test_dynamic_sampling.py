"""DAPO dynamic sampling (spec §4.5 filter_groups; arXiv 2503.14476 §3.2): the refill loop, on hand-built groups."""

from __future__ import annotations

import pytest

from rltrain.algorithms.dynamic_sampling import fill_batch, split_groups
from rltrain.config.costs import Budget
from rltrain.costs import BudgetExceeded, CallRecord, Ledger, load_price_table
from rltrain.types import Trajectory


def group(gid: int, rewards: list[float | None], tag: str = "") -> list[Trajectory]:
    out = []
    for r in rewards:
        t = Trajectory(task_id=f"{tag}q{gid}", group_id=gid, env="x", prompt_ids=[1], response_ids=[2], loss_mask=[1],
                       rollout_logprobs=[-0.5])
        if r is None:
            t.failure = "engine died"
        else:
            t.reward = r
        out.append(t)
    return out


def test_split_drops_zero_std_and_small_groups() -> None:
    batch = group(0, [1.0, 1.0]) + group(1, [0.0, 0.85]) + group(2, [0.5, None]) + group(3, [None, None])
    kept, flat, small = split_groups(batch)
    assert [[t.reward for t in g] for g in kept] == [[0.0, 0.85]] and flat == 1 and small == 2


def test_refill_until_the_batch_is_full() -> None:
    rounds = [group(0, [1.0, 1.0], "a") + group(1, [0.0, 1.0], "a"),  # 1 usable
              group(0, [0.0, 0.0], "b") + group(1, [0.2, 0.9], "b"),  # 1 usable -> full (2)
              group(0, [0.0, 1.0], "c")]
    calls = []

    def generate(i: int) -> list[Trajectory]:
        calls.append(i)
        return rounds[i]

    trajectories, metrics = fill_batch(generate, prompts_needed=2, max_rounds=10)
    assert calls == [0, 1]  # stops as soon as it is full
    assert [(t.task_id, t.group_id) for t in trajectories] == [("aq1", 0), ("aq1", 0), ("bq1", 1), ("bq1", 1)]
    assert metrics["dapo/rounds"] == 2 and metrics["dapo/dropped_zero_std_groups"] == 2
    assert metrics["dapo/batch_fill"] == 1.0 and metrics["dapo/unfilled"] == 0.0


def test_extra_groups_of_the_last_round_are_dropped_and_round_zero_may_be_given() -> None:
    first = group(0, [0.0, 1.0], "a")
    trajectories, metrics = fill_batch(lambda i: group(0, [0.0, 1.0], "b") + group(1, [1.0, 0.0], "b"), 2, 5,
                                       first_round=first)
    assert [t.task_id for t in trajectories] == ["aq0", "aq0", "bq0", "bq0"] and metrics["dapo/kept_groups"] == 2


def test_a_batch_that_never_fills_trains_on_what_it_has() -> None:
    n = []

    def generate(i: int) -> list[Trajectory]:
        n.append(i)
        return group(0, [1.0, 1.0, 1.0], str(i)) + (group(1, [0.0, 1.0], str(i)) if i == 1 else [])

    trajectories, metrics = fill_batch(generate, prompts_needed=4, max_rounds=3)
    assert n == [0, 1, 2] and len(trajectories) == 2
    assert metrics["dapo/unfilled"] == 1.0 and metrics["dapo/batch_fill"] == 0.25 and metrics["dapo/rounds"] == 3
    empty, metrics = fill_batch(lambda i: group(0, [0.0, 0.0]), prompts_needed=2, max_rounds=2)
    assert empty == [] and metrics["dapo/kept_groups"] == 0.0  # the driver skips the update


def test_a_budget_hit_mid_refill_stops_the_loop() -> None:
    ledger = Ledger(load_price_table("xrouter-2025"), budgets=[Budget(limit=2e-3)])
    done = []

    def generate(i: int) -> list[Trajectory]:
        done.append(i)
        ledger.add([CallRecord(f"c{i}", "pool", "gpt-4.1", 1000, 0)])  # $0.002 each
        return group(0, [1.0, 1.0], str(i))

    with pytest.raises(BudgetExceeded, match="run usd 0.002"):
        fill_batch(generate, prompts_needed=2, max_rounds=10, check_budget=ledger.check)
    assert done == [0]


def test_grpo_exposes_the_rounds() -> None:
    from rltrain.algorithms.grpo import GRPO
    from rltrain.config.grpo import GRPOConfig

    assert GRPO(GRPOConfig()).sampling_rounds == 1
    assert GRPO(GRPOConfig(dynamic_sampling=True, max_sampling_rounds=4, clip_high=0.28)).sampling_rounds == 4


def test_grpo_filters_flat_groups_itself_when_dynamic_sampling_is_on(embedded_model) -> None:
    """Without the driver's refill the algorithm still drops zero-std groups (and keeps an all-flat batch)."""
    from transformers import AutoTokenizer

    from rltrain.algorithms.grpo import GRPO
    from rltrain.config.grpo import GRPOConfig

    tokenizer = AutoTokenizer.from_pretrained(embedded_model)
    batch = group(0, [1.0, 1.0]) + group(1, [0.0, 1.0])
    on = GRPO(GRPOConfig(dynamic_sampling=True))
    train, metrics = on.make_batch(batch, tokenizer)
    assert train.input_ids.shape[0] == 2 and metrics["dapo/filtered_zero_std_groups"] == 1.0
    off, _ = GRPO(GRPOConfig()).make_batch(group(0, [1.0, 1.0]) + group(1, [0.0, 1.0]), tokenizer)
    assert off.input_ids.shape[0] == 4
    flat, metrics = on.make_batch(group(0, [1.0, 1.0]), tokenizer)
    assert flat.input_ids.shape[0] == 2 and metrics["dapo/filtered_zero_std_groups"] == 0.0
