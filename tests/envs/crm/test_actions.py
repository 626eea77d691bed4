"""Each state-changing tool checks the written policy before it writes (spec §6.4: "typed action tools ... each
checked against the written policy"); a refused action changes nothing and says which rule it broke."""

import asyncio
from typing import Any

import pytest

from rltrain.envs.crm.db import dump
from rltrain.envs.crm.env import CRMEnv

from .helpers import start, task_of


def env_and_row(sql: str) -> tuple[CRMEnv, tuple[Any, ...]]:
    env = start(task_of("case_count"))
    assert env.conn is not None
    return env, env.conn.execute(sql).fetchone()


def run(env: CRMEnv, name: str, **arguments: Any) -> Any:
    tool = next(t for t in env.tools() if t.name == name)
    return asyncio.run(tool.execute(arguments, env))


def refused(env: CRMEnv, name: str, rule: str, **arguments: Any) -> None:
    assert env.conn is not None
    before = dump(env.conn)
    result = run(env, name, **arguments)
    assert result.error == "policy_violation" and f"policy {rule}" in result.observation, result.observation
    assert dump(env.conn) == before and result.info["db_diff"]["total"] == 0


def test_issue_refund_policy() -> None:
    env, (recent, amount) = env_and_row(
        "SELECT id, amount FROM orders o WHERE status = 'Delivered' AND delivery_date >= '2025-06-01' "
        "AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.order_id = o.id)")
    old, = env.conn.execute("SELECT id FROM orders WHERE status = 'Delivered' AND delivery_date < '2025-05-31'").fetchone()
    pending, = env.conn.execute("SELECT id FROM orders WHERE status = 'Pending'").fetchone()
    done, = env.conn.execute("SELECT order_id FROM refunds").fetchone()
    refused(env, "issue_refund", "1", order_id=pending, amount=1.0, reason="broken")  # not delivered
    refused(env, "issue_refund", "1", order_id=old, amount=1.0, reason="broken")  # outside the 30-day window
    refused(env, "issue_refund", "1", order_id=done, amount=1.0, reason="broken")  # refunded already
    refused(env, "issue_refund", "1", order_id=recent, amount=amount + 1, reason="broken")  # more than paid
    refused(env, "issue_refund", "1", order_id=recent, amount=amount, reason="  ")  # no reason
    result = run(env, "issue_refund", order_id=recent, amount=amount, reason="broken")
    assert result.error is None
    change, = result.info["db_diff"]["changes"]
    assert change["table"] == "refunds" and change["op"] == "insert" and change["values"]["amount"][1] == amount
    refused(env, "issue_refund", "1", order_id=recent, amount=1.0, reason="again")  # at most once


def test_apply_discount_policy() -> None:
    env, (gold, qty, price) = env_and_row(
        "SELECT o.id, o.quantity, p.list_price FROM orders o JOIN accounts a ON a.id = o.account_id JOIN products p "
        "ON p.id = o.product_id WHERE a.segment = 'B2B' AND a.tier = 'Gold' AND o.status = 'Pending'")
    b2c, = env.conn.execute("SELECT o.id FROM orders o JOIN accounts a ON a.id = o.account_id WHERE a.segment = 'B2C' "
                            "AND o.status = 'Pending'").fetchone()
    shipped, = env.conn.execute("SELECT o.id FROM orders o JOIN accounts a ON a.id = o.account_id "
                                "WHERE a.segment = 'B2B' AND o.status = 'Delivered'").fetchone()
    refused(env, "apply_discount", "2", order_id=b2c, percent=5)
    refused(env, "apply_discount", "2", order_id=shipped, percent=5)
    refused(env, "apply_discount", "2", order_id=gold, percent=15)  # Gold caps at 10%
    result = run(env, "apply_discount", order_id=gold, percent=10)
    assert result.error is None
    assert env.conn.execute("SELECT discount_pct, amount FROM orders WHERE id = ?", (gold,)).fetchone() == \
        (10.0, round(qty * price * 0.9, 2))


def test_update_case_policy() -> None:
    env, (closed,) = env_and_row("SELECT id FROM cases WHERE status = 'Closed'")
    escalated, = env.conn.execute("SELECT id FROM cases WHERE status = 'Escalated'").fetchone()
    refused(env, "update_case", "3", case_id=closed, status="Working")  # Closed is final
    refused(env, "update_case", "3", case_id=escalated, status="Working")  # never backwards
    refused(env, "update_case", "3", case_id=escalated, status="Closed")  # closing needs a resolution
    refused(env, "update_case", "3", case_id=escalated, status="Done", resolution="x")  # unknown status
    result = run(env, "update_case", case_id=escalated, status="Closed", resolution="replaced the cable")
    assert result.error is None
    assert env.conn.execute("SELECT status, closed, resolution FROM cases WHERE id = ?", (escalated,)).fetchone() == \
        ("Closed", "2025-06-30", "replaced the cable")


def test_update_contact_policy() -> None:
    env, (contact, email) = env_and_row("SELECT id, email FROM contacts")
    other, = env.conn.execute("SELECT email FROM contacts WHERE id != ?", (contact,)).fetchone()
    refused(env, "update_contact", "4", contact_id=contact, verified_email=other, field="phone", value="+1-555-0000")
    refused(env, "update_contact", "4", contact_id=contact, verified_email=email, field="last_name", value="X")
    refused(env, "update_contact", "4", contact_id=contact, verified_email=email, field="phone", value="call me")
    refused(env, "update_contact", "4", contact_id=contact, verified_email=email, field="email", value="not-an-email")
    result = run(env, "update_contact", contact_id=contact, verified_email=email.upper(), field="phone", value="+1-555-0000")
    assert result.error is None
    assert env.conn.execute("SELECT phone FROM contacts WHERE id = ?", (contact,)).fetchone() == ("+1-555-0000",)


@pytest.mark.parametrize(("name", "arguments", "error"), [
    ("issue_refund", {"order_id": "ORD-9999", "amount": 1, "reason": "x"}, "not_found"),
    ("update_case", {"case_id": "CAS-0001"}, "bad_arguments"),
    ("apply_discount", {"order_id": "ORD-0001", "percent": "lots"}, "bad_arguments"),
    ("update_contact", {"contact_id": "CON-001", "verified_email": "a@b.co", "field": "phone", "value": "1", "x": 1},
     "bad_arguments"),
])
def test_unknown_ids_and_bad_arguments_are_named(name: str, arguments: dict[str, Any], error: str) -> None:
    env = start(task_of("case_count"))
    assert env.run_tool(name, arguments).error == error
