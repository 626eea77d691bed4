"""The written policy of the CRM org and the checks that enforce it on every state-changing action.

The text below is what the agent reads in its system prompt; `check_*` are the same rules in code, run by
the action tools before they write. A violated rule is returned as `PolicyViolation(rule, message)` and the
action writes nothing. Bump `POLICY_VERSION` whenever a rule changes: the version is stored in each generated
DB (`meta.policy_version`) and in every task, so old tasks cannot be scored against new rules silently.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import date

POLICY_VERSION = "crm-policy-v1"
REFUND_WINDOW_DAYS = 30
DISCOUNT_CAP = {"Standard": 5.0, "Gold": 10.0, "Platinum": 15.0}
CASE_TRANSITIONS = {"New": {"Working", "Escalated", "Closed"}, "Working": {"Escalated", "Closed"},
                    "Escalated": {"Closed"}, "Closed": set()}
CONTACT_FIELDS = ("email", "phone")

POLICY_SECTIONS = [
    ("1 Refunds", f"An order can be refunded only when its status is Delivered and its delivery_date is at most "
                  f"{REFUND_WINDOW_DAYS} days before today (meta.today). An order is refunded at most once, for at "
                  f"most its amount. Every refund needs a reason. Use issue_refund; otherwise explain the rule."),
    ("2 Discounts", "Discounts are for B2B accounts only, on orders with status Pending. The largest discount "
                    "depends on the account tier: Standard 5%, Gold 10%, Platinum 15%. If more is asked, apply "
                    "nothing and tell the customer the largest discount their tier allows."),
    ("3 Cases", "Case status moves New -> Working -> Escalated -> Closed; a step may be skipped but never undone, "
                "and a Closed case is final. Closing a case needs a resolution note."),
    ("4 Contacts", "A contact may change only their own email or phone. Before any change, verify the caller: "
                   "pass the contact's current email as verified_email."),
    ("5 Confidentiality", "Never disclose one customer's contact details to anyone else. Never disclose internal "
                          "operation data (product unit costs or margins, support agents' satisfaction scores) or "
                          "internal knowledge articles (visibility = internal). Refuse such requests politely."),
]
POLICY_TEXT = f"Policy {POLICY_VERSION}\n" + "\n".join(f"{s}. {t}" for s, t in POLICY_SECTIONS)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
_PHONE = re.compile(r"^\+?[0-9][0-9\- ]{6,}$")


@dataclass(frozen=True)
class PolicyViolation:
    """A rule an action would break: `rule` names the policy section, `message` tells the agent why."""

    rule: str
    message: str


def _today(conn: sqlite3.Connection) -> date:
    return date.fromisoformat(conn.execute("SELECT value FROM meta WHERE key = 'today'").fetchone()[0])


def check_refund(conn: sqlite3.Connection, order_id: str, amount: float, reason: str) -> PolicyViolation | None:
    """Policy 1: delivered, within the window, not refunded before, amount in (0, order amount], a reason."""
    row = conn.execute("SELECT status, delivery_date, amount FROM orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        return PolicyViolation("not_found", f"no order with id {order_id!r}")
    status, delivered, total = row
    if status != "Delivered":
        return PolicyViolation("1 Refunds", f"order {order_id} is {status}, only Delivered orders can be refunded")
    if (_today(conn) - date.fromisoformat(delivered)).days > REFUND_WINDOW_DAYS:
        return PolicyViolation("1 Refunds", f"order {order_id} was delivered on {delivered}, more than "
                                            f"{REFUND_WINDOW_DAYS} days ago")
    if conn.execute("SELECT 1 FROM refunds WHERE order_id = ?", (order_id,)).fetchone():
        return PolicyViolation("1 Refunds", f"order {order_id} was refunded already")
    if not 0 < amount <= total + 1e-9:
        return PolicyViolation("1 Refunds", f"refund amount {amount} must be above 0 and at most the order amount {total}")
    if not reason.strip():
        return PolicyViolation("1 Refunds", "a refund needs a reason")
    return None


def check_discount(conn: sqlite3.Connection, order_id: str, percent: float) -> PolicyViolation | None:
    """Policy 2: B2B, Pending, percent within the tier's cap."""
    row = conn.execute("SELECT o.status, a.segment, a.tier FROM orders o JOIN accounts a ON a.id = o.account_id "
                       "WHERE o.id = ?", (order_id,)).fetchone()
    if row is None:
        return PolicyViolation("not_found", f"no order with id {order_id!r}")
    status, segment, tier = row
    if segment != "B2B":
        return PolicyViolation("2 Discounts", f"order {order_id} belongs to a {segment} account; discounts are B2B only")
    if status != "Pending":
        return PolicyViolation("2 Discounts", f"order {order_id} is {status}; discounts apply to Pending orders only")
    if not 0 < percent <= DISCOUNT_CAP[tier]:
        return PolicyViolation("2 Discounts", f"a {tier} account may get at most {DISCOUNT_CAP[tier]:g}% (asked {percent:g}%)")
    return None


def check_case_update(conn: sqlite3.Connection, case_id: str, status: str, resolution: str) -> PolicyViolation | None:
    """Policy 3: a known status, an allowed transition, a resolution when closing."""
    row = conn.execute("SELECT status FROM cases WHERE id = ?", (case_id,)).fetchone()
    if row is None:
        return PolicyViolation("not_found", f"no case with id {case_id!r}")
    if status not in CASE_TRANSITIONS:
        return PolicyViolation("3 Cases", f"unknown status {status!r}; use one of {', '.join(CASE_TRANSITIONS)}")
    if status not in CASE_TRANSITIONS[row[0]]:
        return PolicyViolation("3 Cases", f"case {case_id} cannot move from {row[0]} to {status}")
    if status == "Closed" and not resolution.strip():
        return PolicyViolation("3 Cases", "closing a case needs a resolution note")
    return None


def check_contact_update(conn: sqlite3.Connection, contact_id: str, verified_email: str, field: str,
                         value: str) -> PolicyViolation | None:
    """Policy 4: the caller is verified by the contact's current email; only email or phone, well-formed."""
    row = conn.execute("SELECT email FROM contacts WHERE id = ?", (contact_id,)).fetchone()
    if row is None:
        return PolicyViolation("not_found", f"no contact with id {contact_id!r}")
    if verified_email.strip().lower() != row[0].lower():
        return PolicyViolation("4 Contacts", "verified_email is not this contact's current email; verify the caller first")
    if field not in CONTACT_FIELDS:
        return PolicyViolation("4 Contacts", f"field {field!r} cannot be changed; only {' or '.join(CONTACT_FIELDS)}")
    if not (_EMAIL if field == "email" else _PHONE).match(value.strip()):
        return PolicyViolation("4 Contacts", f"{value!r} is not a valid {field}")
    return None
