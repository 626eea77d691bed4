"""Cost arithmetic, price-table versions, budgets and ledger recovery (spec §4.2, §4.3; issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rltrain.costs import (
    Budget,
    BudgetExceeded,
    CallRecord,
    Ledger,
    PriceTable,
    PriceTableError,
    load_price_table,
    records_from_trajectory,
)
from rltrain.types import Trajectory


def test_spec_table_prices_a_call_by_hand() -> None:
    """§4.3: cost = in/1e6·price_in + out/1e6·price_out; gpt-4.1 is $2 / $8 per 1M (§4.2)."""
    table = load_price_table("xrouter-2025")
    assert table.tag == "xrouter-2025@2025-10-v1" and table.scale == 1.0
    record = table.price(CallRecord("c1", "pool", "gpt-4.1", input_tokens=1200, output_tokens=350))
    assert record.usd == pytest.approx(1200 / 1e6 * 2.0 + 350 / 1e6 * 8.0) == pytest.approx(0.0052)
    assert record.provider == "openai" and record.price_table == table.tag
    assert table.usd("deepseek-r1-tput", 1_000_000, 1_000_000) == pytest.approx(0.55 + 2.19)


def test_failed_and_cached_calls_cost_nothing() -> None:
    table = load_price_table("xrouter-2025")
    assert table.price(CallRecord("c", "pool", "gpt-5", 1000, 1000, success=False)).usd == 0.0
    cached = CallRecord("c", "pool", "gpt-5", 1000, 1000, cached=True)
    assert table.price(cached).usd == 0.0
    assert table.price(cached, charge_cached=True).usd == pytest.approx(1000 / 1e6 * 1.25 + 1000 / 1e6 * 10.0)


def test_synthetic_preset_makes_one_strong_call_cost_a_tenth_to_a_third_of_k() -> None:
    """Issue 14: at CPU lengths one call of the strong model (the 0.5B) must cost 0.1-0.3 of K=1 after lambda=3."""
    table = load_price_table("synthetic-cpu")
    assert table.scale == 250.0
    penalty = 3.0 * table.usd("qwen2.5-coder-0.5b-instruct", 150, 100)
    assert 0.1 <= penalty <= 0.3
    assert 3.0 * table.usd("smollm2-135m-instruct", 150, 100) < penalty / 3  # the cheap model is much cheaper
    # the scale is list price x 250: gpt-4.1-mini is $0.40 in, the 0.5B $100 in
    assert table.price_of("qwen2.5-coder-0.5b-instruct").input == pytest.approx(0.40 * table.scale)


def test_user_table_versions_and_errors(tmp_path: Path) -> None:
    mine = {"name": "mine", "version": "v2", "models": {"a": {"input": 1.0, "output": 2.0}}}
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(mine))
    v2 = load_price_table(str(path))
    v1 = PriceTable.from_dict({**mine, "version": "v1", "models": {"a": {"input": 10.0, "output": 20.0}}})
    record = CallRecord("c", "pool", "a", 1_000_000, 0)
    assert (v1.price(record).usd, v1.price(record).price_table) == (10.0, "mine@v1")
    assert (v2.price(record).usd, v2.price(record).price_table) == (1.0, "mine@v2")
    with pytest.raises(PriceTableError, match="no price for model 'b'"):
        v2.usd("b", 1, 1)
    with pytest.raises(PriceTableError, match="neither a preset"):
        load_price_table(str(tmp_path / "missing.json"))
    path.write_text(json.dumps({"name": "x"}))
    with pytest.raises(PriceTableError, match="not a valid price table"):
        load_price_table(str(path))


def test_model_paths_resolve_to_table_keys() -> None:
    table = load_price_table("synthetic-cpu")
    assert table.usd("/root/.cache/rltrain/smollm2-135m-instruct", 1_000_000, 0) == 25.0
    assert table.usd("some-policy", 10, 10) == 0.0  # the table's default entry


def _rec(i: int, model: str = "gpt-4.1", role: str = "pool", traj: str = "t#0", **kw: object) -> CallRecord:
    return CallRecord(f"c{i}", role, model, input_tokens=1000, output_tokens=500, trajectory=traj, **kw)


def test_totals_per_trajectory_step_model_and_role(tmp_path: Path) -> None:
    ledger = Ledger(load_price_table("xrouter-2025"), run="r", run_dir=tmp_path)
    ledger.begin_step(1)
    one = 1000 / 1e6 * 2.0 + 500 / 1e6 * 8.0  # 0.006
    ledger.add([_rec(0), _rec(1, traj="t#1"), _rec(2, model="gpt-4.1-mini", role="judge", traj="t#1")])
    ledger.begin_step(2)
    ledger.add([_rec(3, success=False), _rec(4)])
    mini = 1000 / 1e6 * 0.4 + 500 / 1e6 * 1.6
    assert ledger.run_totals.usd == pytest.approx(3 * one + mini)
    assert ledger.by_step[1].usd == pytest.approx(2 * one + mini) and ledger.by_step[2].usd == pytest.approx(one)
    assert ledger.trajectory_usd("t#1") == pytest.approx(one + mini)
    assert ledger.by_model["gpt-4.1"].calls == 4 and ledger.by_model["gpt-4.1"].failures == 1
    assert ledger.by_role["judge"].usd == pytest.approx(mini)
    metrics = ledger.metrics(2)
    assert metrics["costs/usd_step"] == pytest.approx(one) and metrics["costs/failed_calls_step"] == 1.0
    assert metrics["costs/usd_run"] == pytest.approx(3 * one + mini)
    lines = [json.loads(line) for line in (tmp_path / "costs.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 1, 1, 2, 2] and lines[0]["run"] == "r"
    assert set(lines[0]) >= {"call_id", "run", "step", "trajectory", "role", "model", "provider", "input_tokens",
                             "output_tokens", "reasoning_tokens", "latency_s", "success", "usd", "estimated"}


def test_budget_warns_at_80_percent_then_stops(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    one = 1000 / 1e6 * 2.0 + 500 / 1e6 * 8.0
    budget = Budget(limit=5 * one, scope="run", unit="usd")
    ledger = Ledger(load_price_table("xrouter-2025"), run_dir=tmp_path, budgets=[budget])
    ledger.add([_rec(i) for i in range(3)])
    assert not ledger.check()[0].warning and not caplog.records
    ledger.add([_rec(3)])  # 80 %
    with caplog.at_level("WARNING"):
        assert ledger.check()[0].warning
        ledger.check()
    assert sum("at 80%" in r.message for r in caplog.records) == 1  # warned once
    ledger.add([_rec(4)])
    with pytest.raises(BudgetExceeded, match="run usd") as err:
        ledger.check()
    assert err.value.budget == budget and err.value.spent == pytest.approx(5 * one)


def test_step_and_token_budgets_count_only_their_step_and_roles() -> None:
    ledger = Ledger(load_price_table("xrouter-2025"), budgets=[Budget(3000, scope="step", unit="tokens", roles=("pool",))])
    ledger.begin_step(1)
    ledger.add([_rec(0), _rec(1, role="judge")])  # 1500 pool tokens
    ledger.check()
    ledger.begin_step(2)
    ledger.add([_rec(2)])
    assert ledger.check()[0].spent == 1500  # step 1 does not count in step 2
    ledger.add([_rec(3)])
    with pytest.raises(BudgetExceeded, match="step tokens 3000 \\[pool\\] reached at step 2"):
        ledger.check()


def test_ledger_recovers_totals_and_budget_state_after_restart(tmp_path: Path) -> None:
    one = 1000 / 1e6 * 2.0 + 500 / 1e6 * 8.0
    budget = Budget(limit=4.5 * one)
    first = Ledger(load_price_table("xrouter-2025"), run_dir=tmp_path, budgets=[budget])
    first.begin_step(3)
    first.add([_rec(i) for i in range(4)])
    with (tmp_path / "costs.jsonl").open("a") as f:
        f.write('{"call_id": "torn", "ro')  # a write cut short by the crash
    second = Ledger(load_price_table("xrouter-2025"), run_dir=tmp_path, budgets=[budget])  # the restarted actor
    assert second.recovered == 4 and second.step == 3
    assert second.run_totals.usd == pytest.approx(first.run_totals.usd)
    assert second.trajectory_usd("t#0") == pytest.approx(4 * one)
    assert second.add([_rec(3)]) == []  # a re-sent record is not counted twice
    with pytest.raises(BudgetExceeded):
        second.add([_rec(4)])
        second.check()


def test_records_from_trajectory_counts_policy_turns_and_service_calls() -> None:
    traj = Trajectory(task_id="q1", group_id=2, env="router", prompt_ids=[0] * 10)
    traj.append([1, 2, 3], policy=True, logprobs=[0.0] * 3)
    traj.append([9] * 4, policy=False)
    traj.append([4, 5], policy=True, logprobs=[0.0] * 2)
    traj.user_calls = [
        {"key": "q1#2/0", "hat": "pool", "role": "pool", "model": "gpt-4.1", "backend": "openai:gpt-4.1",
         "prompt_tokens": 100, "completion_tokens": 50, "latency_s": 0.5},
        {"key": "q1#2/1", "hat": "user", "backend": "rules", "prompt_tokens": 0, "completion_tokens": 0},
        {"key": "q1#2/2", "hat": "pool", "role": "pool", "model": "gpt-4.1", "backend": "cache",
         "prompt_tokens": 100, "completion_tokens": 50},
    ]
    records = records_from_trajectory(traj, "smollm2-135m-instruct", step=5, run="r")
    policy = [r for r in records if r.role == "policy"]
    assert [(r.input_tokens, r.output_tokens) for r in policy] == [(10, 3), (17, 2)]
    pool = [r for r in records if r.role == "pool"]
    assert len(pool) == 2 and pool[1].cached and all(r.trajectory == "q1#2" and r.step == 5 for r in records)
    ledger = Ledger(load_price_table("xrouter-2025"))
    listed = ledger.add(records)  # the spec table does not price the local policy: recorded at $0, flagged
    assert {r.price_table for r in listed if r.role == "policy"} == {"xrouter-2025@2025-10-v1 (unpriced)"}
    assert sum(r.usd for r in listed if r.role == "policy") == 0.0
    with pytest.raises(PriceTableError, match="no price for model 'smollm2-135m-instruct'"):  # other roles: an error
        Ledger(load_price_table("xrouter-2025")).add([CallRecord("u", "user", "smollm2-135m-instruct", 10, 10)])
    priced = Ledger(load_price_table("synthetic-cpu")).add(records)
    assert sum(r.usd for r in priced if r.role == "pool") == 0.0  # gpt-4.1 is under the table's default (0)


def test_a_call_priced_by_its_caller_keeps_its_price() -> None:
    """The router env charges a cached pool reply as if the model ran (its reward must not depend on the cache);
    the ledger keeps that price instead of re-pricing the cached call at 0."""
    from rltrain.costs import record_from_call

    call = {"key": "q#0/0", "hat": "pool", "role": "pool", "model": "qwen2.5-coder-0.5b-instruct", "backend": "cache",
            "prompt_tokens": 100, "completion_tokens": 50, "usd": 0.03, "price_table": "synthetic-cpu@2026-12-v1"}
    record = Ledger(load_price_table("synthetic-cpu")).add([record_from_call(call, "q#0", 0)])[0]
    assert record.cached and record.usd == 0.03
    unpriced = Ledger(load_price_table("synthetic-cpu")).add([record_from_call({**call, "usd": None}, "q#0", 0)])[0]
    assert unpriced.usd == 0.0  # costs.charge_cached=false: nothing was spent
