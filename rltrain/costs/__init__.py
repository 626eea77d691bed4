"""Cost accounting: call records, versioned price tables, budgets and the ledger (docs/costs.md)."""

from rltrain.costs.budgets import Budget, BudgetExceeded, BudgetStatus
from rltrain.costs.ledger import COSTS_FILE, Ledger, Totals, record_from_call, records_from_trajectory
from rltrain.costs.prices import PRESETS, ModelPrice, PriceTable, PriceTableError, load_price_table
from rltrain.costs.records import ROLES, CallRecord, estimate_tokens

__all__ = ["COSTS_FILE", "PRESETS", "ROLES", "Budget", "BudgetExceeded", "BudgetStatus", "CallRecord", "Ledger",
           "ModelPrice", "PriceTable", "PriceTableError", "Totals", "estimate_tokens", "load_price_table",
           "record_from_call", "records_from_trajectory"]
