"""The cost ledger: prices every call record, appends it to `runs/<name>/costs.jsonl`, keeps totals, enforces budgets.

Pure Python (no Ray): `actors/ledger.py` runs it as its own actor; tests, `rltrain eval` and `rltrain serve` use it
in-process. Totals are kept per trajectory, step, run, model and role. The file is the source of truth: a new
ledger on an existing file (an actor restart, a resumed run) reads it back, so totals and budget state survive,
and a record whose `call_id` is already in the file is not counted twice (a re-sent batch after a restart).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rltrain.costs.budgets import Budget, BudgetExceeded, BudgetStatus
from rltrain.costs.prices import PriceTable, PriceTableError, normalise_model_id
from rltrain.costs.records import CallRecord

logger = logging.getLogger(__name__)

COSTS_FILE = "costs.jsonl"


@dataclasses.dataclass
class Totals:
    """Sums over a set of records."""

    usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    failures: int = 0
    estimated: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, record: CallRecord) -> None:
        self.usd += record.usd or 0.0
        self.input_tokens += record.input_tokens
        self.output_tokens += record.output_tokens
        self.calls += 1
        self.failures += not record.success
        self.estimated += record.estimated

    def as_dict(self) -> dict[str, float]:
        return {"usd": self.usd, "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "calls": self.calls, "failures": self.failures, "estimated": self.estimated}


class Ledger:
    """Prices, stores and sums call records for one run.

    Args:
        table: the run's price table.
        run: the run's name (stamped on records that have none).
        run_dir: where costs.jsonl lives; None keeps records in memory only (serve without a run, tests).
        budgets: limits checked by `check`.
        charge_cached: price replies served from a cache as if the model had run (default: they cost 0).
    """

    def __init__(self, table: PriceTable, run: str = "", run_dir: str | Path | None = None,
                 budgets: Sequence[Budget] = (), charge_cached: bool = False) -> None:
        self.table, self.run, self.budgets, self.charge_cached = table, run, tuple(budgets), charge_cached
        self.path = Path(run_dir) / COSTS_FILE if run_dir is not None else None
        self.step = 0
        self.run_totals = Totals()
        self.by_step: dict[int, Totals] = defaultdict(Totals)
        self.by_trajectory: dict[str, Totals] = defaultdict(Totals)
        self.by_model: dict[str, Totals] = defaultdict(Totals)
        self.by_role: dict[str, Totals] = defaultdict(Totals)
        self.by_step_role: dict[tuple[int, str], Totals] = defaultdict(Totals)
        self._seen: set[str] = set()
        self._warned: set[tuple[str, int]] = set()
        self._unpriced: set[str] = set()
        self.recovered = self._recover()

    # ---------------------------------------------------------------------------------------------------------
    # Records in

    def _recover(self) -> int:
        """Re-read costs.jsonl (restart or resume); returns how many records it held. A torn last line is skipped."""
        if self.path is None or not self.path.is_file():
            return 0
        count = 0
        with self.path.open() as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = CallRecord.from_dict(json.loads(line))
                except (json.JSONDecodeError, TypeError, ValueError) as err:
                    logger.warning("%s line %d is unreadable (%s); skipped (a write cut short by a crash)", self.path, number, err)
                    continue
                self._count(record)
                self.step = max(self.step, record.step)
                count += 1
        logger.info("cost ledger recovered %d records (%.6g USD) from %s", count, self.run_totals.usd, self.path)
        return count

    def begin_step(self, step: int) -> None:
        """Records without a step are counted in `step` from now on (the driver calls it at the start of each step)."""
        self.step = step

    def add(self, records: Iterable[CallRecord | dict[str, Any]]) -> list[CallRecord]:
        """Price, stamp (run, step), store and count `records`; returns the priced records that were new."""
        new: list[CallRecord] = []
        for raw in records:
            record = raw if isinstance(raw, CallRecord) else CallRecord.from_dict(raw)
            if record.call_id in self._seen:
                continue
            record = dataclasses.replace(record, run=record.run or self.run,
                                         step=record.step if record.step >= 0 else self.step)
            if record.usd is None or not record.price_table:
                record = self._price(record)
            self._count(record)
            new.append(record)
        if new and self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:  # one write per batch; a crash mid-write leaves one torn line at most
                f.write("".join(json.dumps(r.to_dict()) + "\n" for r in new))
        return new

    def _price(self, record: CallRecord) -> CallRecord:
        """Price from the table. The policy's own model may be missing from a list-price table (xRouter does not charge
        the router in training, spec §4.2): its records then cost 0 and say `<table> (unpriced)`; any other role's
        missing model is an error that names the table (PriceTableError)."""
        try:
            return self.table.price(record, self.charge_cached)
        except PriceTableError:
            if record.role != "policy":
                raise
            if record.model not in self._unpriced:
                self._unpriced.add(record.model)
                logger.warning("price table %s has no price for the policy model %r; its calls are recorded at $0",
                               self.table.tag, record.model)
            return dataclasses.replace(record, usd=0.0, price_table=f"{self.table.tag} (unpriced)")

    def _count(self, record: CallRecord) -> None:
        self._seen.add(record.call_id)
        for totals in (self.run_totals, self.by_step[record.step], self.by_model[record.model],
                       self.by_role[record.role], self.by_step_role[(record.step, record.role)]):
            totals.add(record)
        if record.trajectory:
            self.by_trajectory[record.trajectory].add(record)

    # ---------------------------------------------------------------------------------------------------------
    # Budgets

    def spent(self, budget: Budget, step: int | None = None) -> float:
        """What counts against `budget` so far (this step's for step budgets)."""
        step = self.step if step is None else step
        if budget.roles:
            parts = [self.by_step_role.get((step, r), Totals()) for r in budget.roles] if budget.scope == "step" else \
                [self.by_role.get(r, Totals()) for r in budget.roles]
        else:
            parts = [self.by_step.get(step, Totals())] if budget.scope == "step" else [self.run_totals]
        return sum(p.usd if budget.unit == "usd" else p.tokens for p in parts)

    def status(self, step: int | None = None) -> list[BudgetStatus]:
        step = self.step if step is None else step
        return [BudgetStatus(b, self.spent(b, step), step) for b in self.budgets]

    def check(self, step: int | None = None) -> list[BudgetStatus]:
        """Warn once per budget (per step for step budgets) past `warn_at`; raise BudgetExceeded at the limit."""
        statuses = self.status(step)
        for s in statuses:
            if s.exceeded:
                raise BudgetExceeded(s.budget, s.spent, s.step)
            key = (s.budget.label, s.step if s.budget.scope == "step" else -1)
            if s.warning and key not in self._warned:
                self._warned.add(key)
                logger.warning("cost budget %s is at %.0f%% (%.6g of %g %s) at step %d", s.budget.label, 100 * s.fraction,
                               s.spent, s.budget.limit, s.budget.unit, s.step)
        return statuses

    # ---------------------------------------------------------------------------------------------------------
    # Totals out

    def trajectory_usd(self, trajectory: str) -> float:
        return self.by_trajectory.get(trajectory, Totals()).usd

    def totals(self) -> dict[str, Any]:
        return {"run": self.run_totals.as_dict(), "price_table": self.table.tag, "price_scale": self.table.scale,
                "by_step": {str(k): v.as_dict() for k, v in sorted(self.by_step.items())},
                "by_model": {k: v.as_dict() for k, v in sorted(self.by_model.items())},
                "by_role": {k: v.as_dict() for k, v in sorted(self.by_role.items())},
                "by_trajectory": {k: v.as_dict() for k, v in sorted(self.by_trajectory.items())}}

    def metrics(self, step: int | None = None) -> dict[str, float]:
        """Flat metrics for the step and the run (`costs/...`), budget fractions included."""
        step = self.step if step is None else step
        here = self.by_step.get(step, Totals())
        out = {"costs/usd_step": here.usd, "costs/tokens_step": float(here.tokens), "costs/calls_step": float(here.calls),
               "costs/failed_calls_step": float(here.failures), "costs/usd_run": self.run_totals.usd,
               "costs/tokens_run": float(self.run_totals.tokens), "costs/price_scale": self.table.scale,
               "costs/estimated_rate_step": here.estimated / here.calls if here.calls else 0.0}
        trajectories = list(self.by_trajectory.values())
        for (s, role), totals in self.by_step_role.items():
            if s == step:
                out[f"costs/usd_step/{role}"] = totals.usd
        for model, totals in self.by_model.items():
            out[f"costs/usd_run/model/{normalise_model_id(model)}"] = totals.usd
            out[f"costs/calls_run/model/{normalise_model_id(model)}"] = float(totals.calls)
        if trajectories:
            out["costs/usd_per_trajectory_run"] = sum(t.usd for t in trajectories) / len(trajectories)
        for s in self.status(step):
            out[f"costs/budget_frac/{s.budget.scope}_{s.budget.unit}"] = s.fraction
        return out


def records_from_trajectory(traj: Any, policy_model: str, step: int = -1, run: str = "") -> list[CallRecord]:
    """The call records of one trajectory: one per policy turn, plus every non-policy model call it made.

    Policy turn t reads the prompt and everything before the turn (`turn_boundaries[t]`) and writes its own policy
    tokens. Non-policy calls come from `traj.user_calls` (the LLM service's records, `UserReply.record`) and
    `traj.cost_records`; rule-based and replayed replies are no model calls and are skipped. A call record that
    carries `usd` and `price_table` (the router env prices its pool calls for its reward) keeps that price.
    """
    episode = f"{traj.task_id}#{traj.group_id}"
    episode = getattr(traj, "episode", None) or episode
    out: list[CallRecord] = []
    bounds = list(traj.turn_boundaries or ([0] if traj.response_ids else []))
    for t, start in enumerate(bounds):
        end = bounds[t + 1] if t + 1 < len(bounds) else len(traj.response_ids)
        out.append(CallRecord(f"{episode}/policy/{t}", "policy", policy_model,
                              input_tokens=len(traj.prompt_ids) + start, output_tokens=sum(traj.loss_mask[start:end]),
                              trajectory=episode, step=step, run=run, provider="local"))
    for n, call in enumerate([*getattr(traj, "user_calls", []), *getattr(traj, "cost_records", [])]):
        record = record_from_call(call, episode, n, step, run)
        if record is not None:
            out.append(record)
    return out


def record_from_call(call: dict[str, Any], episode: str, n: int, step: int = -1, run: str = "") -> CallRecord | None:
    """A `CallRecord` from a service record (`UserReply.record`) or an already-built record dict; None for rules/replay."""
    if "role" in call and "model" in call and "call_id" in call:
        return dataclasses.replace(CallRecord.from_dict(call), step=call.get("step", step) if call.get("step", -1) >= 0
                                   else step, run=call.get("run") or run)
    backend = str(call.get("backend", ""))
    if backend in ("rules", "replay", ""):
        return None
    model = call.get("model") or backend.split(":", 1)[-1]
    role = call.get("role") or {"user": "user", "judge": "judge"}.get(call.get("hat", ""), "other")
    return CallRecord(call_id=f"{episode}/{role}/{call.get('key', n)}", role=role, model=model,
                      input_tokens=int(call.get("prompt_tokens", 0)), output_tokens=int(call.get("completion_tokens", 0)),
                      reasoning_tokens=int(call.get("reasoning_tokens", 0)), latency_s=float(call.get("latency_s", 0.0)),
                      success=bool(call.get("success", True)), estimated=bool(call.get("estimated", False)),
                      trajectory=episode, step=step, run=run, cached=backend == "cache" or bool(call.get("cached")),
                      # a caller that priced the call itself (the router env, for its reward) keeps its price
                      usd=call.get("usd"), price_table=str(call.get("price_table") or ""))
