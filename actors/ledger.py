"""The cost ledger actor: one per run, `<run>-ledger`, the single writer of `runs/<name>/costs.jsonl`.

Why its own actor and not a method of the reward accountant (`actors/accountant.py`):
- the accountant runs verifiers in a process pool that it kills and replaces on a time-out; the ledger must
  never be blocked behind a slow verifier, nor lose its in-memory totals when that pool is replaced;
- the ledger has callers the accountant does not (the LLM service, `rltrain serve`, evaluation) and must exist for
  runs without a reward function (serving) or with rewards computed elsewhere;
- restart semantics differ: the ledger recovers its totals and budget state from costs.jsonl after a restart
  (`max_restarts`), while the accountant is stateless;
- it is tiny (sums and one file append per batch), so it costs a fraction of a CPU and no placement bundle.

The logic lives in `rltrain.costs.Ledger` (no Ray); this class only hosts it. `check_budget` returns the exceeded
budget as data rather than raising through Ray, so the driver can stop cleanly with a checkpoint (docs/costs.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from actors.common import init_role
from rltrain.config.costs import CostsConfig
from rltrain.costs import BudgetExceeded, CallRecord, Ledger, load_price_table, records_from_trajectory

logger = logging.getLogger(__name__)


class CostLedger:
    """Hosts a `Ledger` for one run. Every method is cheap; callers may await it on each step."""

    def __init__(self, cfg: CostsConfig, run: str, run_dir: str | None, policy_model: str = "") -> None:
        init_role("ledger", threads=1)
        self.cfg, self.policy_model = cfg, policy_model
        table = load_price_table(cfg.price_table)
        self.ledger = Ledger(table, run=run, run_dir=run_dir, budgets=cfg.budgets, charge_cached=cfg.charge_cached)
        logger.info("cost ledger: price table %s (scale x%g vs list prices), %d budget(s), %d records recovered",
                    table.tag, table.scale, len(cfg.budgets), self.ledger.recovered)

    def begin_step(self, step: int) -> None:
        self.ledger.begin_step(step)

    def add(self, records: Sequence[CallRecord | dict[str, Any]]) -> list[dict[str, Any]]:
        """Price and store `records`; returns the new priced records as dicts."""
        return [r.to_dict() for r in self.ledger.add(records)]

    def add_trajectories(self, trajectories: Sequence[Any], step: int) -> dict[str, float]:
        """Record every call of the step's trajectories (policy turns, users, judges, pool); returns USD per trajectory."""
        self.ledger.begin_step(step)
        for traj in trajectories:
            self.ledger.add(records_from_trajectory(traj, self.policy_model, step, self.ledger.run))
        return {f"{t.task_id}#{t.group_id}": self.ledger.trajectory_usd(f"{t.task_id}#{t.group_id}") for t in trajectories}

    def check_budget(self, step: int | None = None) -> dict[str, Any] | None:
        """None while every budget holds (warnings are logged at 80 %); else the exceeded budget, for a clean stop."""
        try:
            self.ledger.check(step)
        except BudgetExceeded as err:
            return {"budget": err.budget.label, "spent": err.spent, "limit": err.budget.limit, "unit": err.budget.unit,
                    "step": err.step, "message": str(err)}
        return None

    def trajectory_usd(self, trajectory: str) -> float:
        return self.ledger.trajectory_usd(trajectory)

    def metrics(self, step: int | None = None) -> dict[str, float]:
        return self.ledger.metrics(step)

    def totals(self) -> dict[str, Any]:
        return self.ledger.totals()


def start_ledger(cfg: CostsConfig, run_tag: str, run_dir: str | None, policy_model: str = "") -> Any:
    """Start `<run_tag>-ledger` (restartable: it recovers from costs.jsonl; calls to it are retried across a restart)."""
    import ray

    return ray.remote(CostLedger).options(name=f"{run_tag}-ledger", num_cpus=cfg.num_cpus, max_restarts=cfg.max_restarts,
                                          max_task_retries=-1).remote(cfg, run_tag, run_dir, policy_model)
