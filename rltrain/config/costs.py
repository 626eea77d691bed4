"""The cost ledger: price table, budgets (docs/costs.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rltrain.config.loader import check

_ROLES = ("policy", "user", "judge", "pool", "proposer", "reviewer", "summariser", "other")


@dataclass(frozen=True)
class Budget:
    limit: float
    """The limit, in `unit`; reaching it stops the run cleanly with a checkpoint (a warning comes at `warn_at`)."""
    scope: Literal["run", "step"] = "run"
    """`run`: everything since the run started (resumes included, from costs.jsonl); `step`: one training step."""
    unit: Literal["usd", "tokens"] = "usd"
    """USD from the price table, or input + output tokens."""
    roles: tuple[str, ...] = ()
    """Which calls count (policy, user, judge, pool, proposer, reviewer, summariser, other); empty: all."""
    warn_at: float = 0.8
    """Fraction of the limit that logs a warning."""

    def __post_init__(self) -> None:
        check(self.limit > 0, f"costs.budgets: limit={self.limit} must be > 0 (remove the budget to have none)")
        check(0 < self.warn_at <= 1, f"costs.budgets: warn_at={self.warn_at} must be in (0, 1]")
        check(all(r in _ROLES for r in self.roles), f"costs.budgets: roles={list(self.roles)} must be among {_ROLES}")

    @property
    def label(self) -> str:
        roles = f" [{','.join(self.roles)}]" if self.roles else ""
        return f"{self.scope} {self.unit} {self.limit:g}{roles}"


@dataclass(frozen=True)
class CostsConfig:
    price_table: str = "synthetic-cpu"
    """`xrouter-2025` (spec §4.2 list prices), `synthetic-cpu` (x250, so cost carries signal on CPU-length calls), or
    the path of your own JSON table (docs/costs.md)."""
    budgets: tuple[Budget, ...] = ()
    """Limits, e.g. `[{limit: 5.0}, {limit: 20000, scope: step, unit: tokens}]`; none by default."""
    charge_cached: bool = False
    """Price replies served from a response cache as if the model had run (default: a cached reply costs 0)."""
    num_cpus: float = 0.0
    """Logical Ray CPUs of the ledger actor; 0 by default: it only sums and appends to a file, so it needs no core of its own."""
    max_restarts: int = 3
    """Times Ray restarts the ledger actor; it recovers its totals and budget state from costs.jsonl."""

    def __post_init__(self) -> None:
        check(bool(self.price_table), "costs.price_table must name a preset (xrouter-2025, synthetic-cpu) or a JSON file")
        check(self.num_cpus >= 0, f"costs.num_cpus={self.num_cpus} must be >= 0")
        check(self.max_restarts >= 0, f"costs.max_restarts={self.max_restarts} must be >= 0")
