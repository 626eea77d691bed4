"""Budgets: a limit per run or per step, in USD or tokens; a warning at 80 %, then a clean stop.

The ledger checks every budget after each batch of records. Crossing `warn_at` (0.8) logs one warning per budget
(and per step for step budgets); reaching the limit raises `BudgetExceeded` from `Ledger.check`, which the driver
turns into a clean stop: it writes a checkpoint and names the budget (docs/costs.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from rltrain.config.costs import Budget

__all__ = ["Budget", "BudgetExceeded", "BudgetStatus"]


class BudgetExceeded(RuntimeError):
    """A budget was reached. `budget` names it (`costs.budgets[i]`, e.g. "run usd 5.0"), `spent` and `limit` say by how much."""

    def __init__(self, budget: Budget, spent: float, step: int) -> None:
        self.budget, self.spent, self.step = budget, spent, step
        super().__init__(
            f"cost budget {budget.label} reached at step {step}: spent {spent:.6g} of {budget.limit:g} {budget.unit}. "
            f"The run stops cleanly with a checkpoint; raise or remove this budget (costs.budgets) and resume to go on")


@dataclass(frozen=True)
class BudgetStatus:
    """Where one budget stands: spent, the fraction of the limit, and whether it warned or is exceeded."""

    budget: Budget
    spent: float
    step: int

    @property
    def fraction(self) -> float:
        return self.spent / self.budget.limit

    @property
    def warning(self) -> bool:
        return self.fraction >= self.budget.warn_at

    @property
    def exceeded(self) -> bool:
        return self.spent >= self.budget.limit
