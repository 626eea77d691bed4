"""The state-changing actions of the CRM and the guarded read-only query, as plain functions on a connection.

The tools (`rltrain.envs.crm.tools`) wrap these for the agent; the task generator runs them to build the
expected final state of a task, and the replaying reward (`rewards.crm`) runs them to rebuild an episode's
final state from its tool calls. One implementation, three users, so the three can never disagree.

Read-only guard of `query` (CRMArena-Pro's SOQL stand-in, spec §6.4), defence in depth:
1. one statement only (`sqlite3.complete_statement` on the text after the first `;`) -> `multiple_statements`;
2. an authorizer that allows reading and functions only and names what it denied: `write_refused` (INSERT,
   UPDATE, DELETE, also inside a CTE; CREATE, DROP, ALTER, transactions), `attach_refused`, `pragma_refused`;
3. `PRAGMA query_only = ON` while the statement runs (SQLite's read-only mode) -> `write_refused`;
4. a progress handler that aborts after `time_limit_s` -> `query_timeout`; rows beyond `max_rows` are cut
   and the observation says so.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rltrain.envs.crm import policy


@dataclass(frozen=True)
class ActionOutcome:
    """What one call did: the text the agent sees, an error class (None when it succeeded)."""

    observation: str
    error: str | None = None


class QueryRefused(Exception):
    """The guard refused a statement; `kind` is the named error."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
_NAMED = {sqlite3.SQLITE_ATTACH: "attach_refused", sqlite3.SQLITE_DETACH: "attach_refused",
          sqlite3.SQLITE_PRAGMA: "pragma_refused"}


def _statement_count(sql: str) -> int:
    """How many complete statements `sql` holds (a trailing `;` and comments do not count as one)."""
    count, rest = 0, sql
    while rest.strip():
        for i, char in enumerate(rest):
            if char == ";" and sqlite3.complete_statement(rest[: i + 1]):
                head, rest = rest[: i + 1], rest[i + 1:]
                break
        else:
            head, rest = rest, ""
        body = "\n".join(line.split("--")[0] for line in head.splitlines()).strip().rstrip(";").strip()
        count += bool(body)
    return count


def run_query(conn: sqlite3.Connection, sql: str, time_limit_s: float = 1.0, max_rows: int = 50) -> ActionOutcome:
    """Run one read-only SELECT; the result as JSON lines (column names first) or a named error."""
    if not isinstance(sql, str) or not sql.strip():
        return ActionOutcome("query needs a non-empty `sql` string", "bad_arguments")
    if _statement_count(sql) > 1:
        return ActionOutcome("multiple_statements: send one SELECT statement per query call", "multiple_statements")
    denied: list[str] = []

    def authorize(action: int, *_: Any) -> int:
        if action in _READ_ACTIONS:
            return sqlite3.SQLITE_OK
        denied.append(_NAMED.get(action, "write_refused"))
        return sqlite3.SQLITE_DENY

    deadline = time.monotonic() + time_limit_s
    conn.execute("PRAGMA query_only = ON")
    conn.set_authorizer(authorize)
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
    try:
        cursor = conn.execute(sql)
        rows = cursor.fetchmany(max_rows + 1)
        names = [d[0] for d in cursor.description or []]
    except sqlite3.Error as err:
        if denied:
            kind = denied[0]
            return ActionOutcome(f"{kind}: the query tool is read-only (one SELECT, no ATTACH or PRAGMA); "
                                 f"use the action tools to change data", kind)
        if "interrupted" in str(err):
            return ActionOutcome(f"query_timeout: the statement ran longer than {time_limit_s:g}s; narrow it down",
                                 "query_timeout")
        if "readonly" in str(err) or "query_only" in str(err):
            return ActionOutcome("write_refused: the query tool is read-only", "write_refused")
        return ActionOutcome(f"sql_error: {err}", "sql_error")
    finally:
        conn.set_progress_handler(None, 0)
        conn.set_authorizer(None)
        conn.execute("PRAGMA query_only = OFF")
    lines = [json.dumps(names)] + [json.dumps(list(r)) for r in rows[:max_rows]]
    if len(rows) > max_rows:
        lines.append(f"(row cap: only the first {max_rows} rows are shown; add WHERE/LIMIT or aggregate)")
    return ActionOutcome("\n".join(lines))


def _refuse(violation: policy.PolicyViolation) -> ActionOutcome:
    kind = "not_found" if violation.rule == "not_found" else "policy_violation"
    prefix = "" if kind == "not_found" else f"policy {violation.rule}: "
    return ActionOutcome(f"{kind}: {prefix}{violation.message}. Nothing was changed.", kind)


def _today(conn: sqlite3.Connection) -> str:
    return conn.execute("SELECT value FROM meta WHERE key = 'today'").fetchone()[0]


def update_case(conn: sqlite3.Connection, case_id: str, status: str, resolution: str = "") -> ActionOutcome:
    if v := policy.check_case_update(conn, case_id, status, resolution):
        return _refuse(v)
    closed = _today(conn) if status == "Closed" else None
    conn.execute("UPDATE cases SET status = ?, closed = ?, resolution = ? WHERE id = ?",
                 (status, closed, resolution.strip(), case_id))
    return ActionOutcome(f"case {case_id} is now {status}")


def issue_refund(conn: sqlite3.Connection, order_id: str, amount: float, reason: str) -> ActionOutcome:
    if v := policy.check_refund(conn, order_id, amount, reason):
        return _refuse(v)
    n = conn.execute("SELECT COUNT(*) FROM refunds").fetchone()[0]
    conn.execute("INSERT INTO refunds VALUES (?, ?, ?, ?, ?)",
                 (f"REF-{n + 1:03d}", order_id, round(amount, 2), reason.strip(), _today(conn)))
    return ActionOutcome(f"refund REF-{n + 1:03d} of {amount:.2f} issued for order {order_id}")


def apply_discount(conn: sqlite3.Connection, order_id: str, percent: float) -> ActionOutcome:
    if v := policy.check_discount(conn, order_id, percent):
        return _refuse(v)
    qty, price = conn.execute("SELECT o.quantity, p.list_price FROM orders o JOIN products p ON p.id = o.product_id "
                              "WHERE o.id = ?", (order_id,)).fetchone()
    amount = round(qty * price * (1 - percent / 100), 2)
    conn.execute("UPDATE orders SET discount_pct = ?, amount = ? WHERE id = ?", (float(percent), amount, order_id))
    return ActionOutcome(f"order {order_id}: {percent:g}% discount applied, amount is now {amount:.2f}")


def update_contact(conn: sqlite3.Connection, contact_id: str, verified_email: str, field: str, value: str) -> ActionOutcome:
    if v := policy.check_contact_update(conn, contact_id, verified_email, field, value):
        return _refuse(v)
    conn.execute(f"UPDATE contacts SET {field} = ? WHERE id = ?", (value.strip(), contact_id))  # field checked above
    return ActionOutcome(f"contact {contact_id}: {field} updated")


ActionFn = Callable[..., ActionOutcome]
ACTIONS: dict[str, tuple[ActionFn, dict[str, type]]] = {
    "update_case": (update_case, {"case_id": str, "status": str, "resolution": str}),
    "issue_refund": (issue_refund, {"order_id": str, "amount": float, "reason": str}),
    "apply_discount": (apply_discount, {"order_id": str, "percent": float}),
    "update_contact": (update_contact, {"contact_id": str, "verified_email": str, "field": str, "value": str}),
}
"""name -> (function, argument types); every argument is required except `resolution`."""
OPTIONAL = {"resolution"}


def apply_action(conn: sqlite3.Connection, name: str, arguments: dict[str, Any]) -> ActionOutcome:
    """Check the arguments' names and types, then run the action (which checks the policy) and commit."""
    if name not in ACTIONS:
        return ActionOutcome(f"unknown action {name!r}; actions: {', '.join(ACTIONS)}", "unknown_tool")
    fn, types = ACTIONS[name]
    if not isinstance(arguments, dict):
        return ActionOutcome(f"{name} needs an argument object", "bad_arguments")
    unknown = set(arguments) - set(types)
    missing = set(types) - set(arguments) - OPTIONAL
    if unknown or missing:
        return ActionOutcome(f"bad_arguments: {name} takes {', '.join(types)}"
                             + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else "")
                             + (f"; missing: {', '.join(sorted(missing))}" if missing else ""), "bad_arguments")
    try:
        kwargs = {k: types[k](v) if types[k] is not float or not isinstance(v, bool) else float("nan")
                  for k, v in arguments.items()}
    except (TypeError, ValueError):
        return ActionOutcome(f"bad_arguments: {name} argument types are {({k: t.__name__ for k, t in types.items()})}",
                             "bad_arguments")
    outcome = fn(conn, **kwargs)
    conn.commit()
    return outcome

