"""The ledger actor survives its own restart: totals and budget state come back from costs.jsonl (issue 14)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rltrain.config.costs import Budget, CostsConfig
from rltrain.costs import CallRecord

pytestmark = pytest.mark.ray


def test_ledger_actor_recovers_after_a_kill(ray_cluster: None, tmp_path: Path) -> None:
    import ray

    from actors.ledger import start_ledger

    one = 1000 / 1e6 * 2.0 + 500 / 1e6 * 8.0  # gpt-4.1, §4.2
    cfg = CostsConfig(price_table="xrouter-2025", budgets=(Budget(limit=3.5 * one),), max_restarts=1)
    ledger = start_ledger(cfg, "ledger-test", str(tmp_path))
    records = [CallRecord(f"c{i}", "pool", "gpt-4.1", 1000, 500, trajectory="t#0") for i in range(3)]
    ray.get(ledger.add.remote(records))
    assert ray.get(ledger.check_budget.remote()) is None  # 3 of 3.5: a warning only
    def getpid(_ledger: object) -> int:
        return __import__("os").getpid()

    pid = ray.get(ledger.__ray_call__.remote(getpid))
    ray.kill(ledger, no_restart=False)
    deadline = time.monotonic() + 60
    while True:  # ray.kill is asynchronous: the old process may still answer; wait for the restarted one
        try:
            if ray.get(ledger.__ray_call__.remote(getpid), timeout=30) != pid:
                break
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            pass
        assert time.monotonic() < deadline, "the ledger actor did not come back"
        time.sleep(0.5)
    totals = ray.get(ledger.totals.remote(), timeout=30)  # the restarted actor re-read costs.jsonl in __init__
    assert totals["run"]["usd"] == pytest.approx(3 * one) and totals["by_trajectory"]["t#0"]["calls"] == 3
    ray.get(ledger.add.remote([CallRecord("c3", "pool", "gpt-4.1", 1000, 500, trajectory="t#0")]))
    exceeded = ray.get(ledger.check_budget.remote())
    assert exceeded is not None and exceeded["budget"] == f"run usd {3.5 * one:g}"
    assert exceeded["spent"] == pytest.approx(4 * one)
