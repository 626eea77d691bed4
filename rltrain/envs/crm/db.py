"""The CRM database: schema, the seeded generator of one organisation ("org"), snapshots and diffs.

One org is a small B2B + B2C company in SQLite: accounts, contacts, products, orders, refunds, cases, support
agents, knowledge articles and the policy text. `build_org(seed)` is deterministic in `seed` (same seed, same
rows, byte for byte); `fresh_db(seed)` hands each episode its own in-memory copy (SQLite's backup API, so the
generator runs once per process and seed). The policy version is stored in the `meta` table beside the seed:
a DB and the policy it was generated under always travel together.
"""

from __future__ import annotations

import functools
import random
import sqlite3
from datetime import date, timedelta
from typing import Any

from rltrain.envs.crm.policy import POLICY_SECTIONS, POLICY_VERSION

TODAY = date(2025, 6, 30)
"""The org's "today": refund windows and open-case ages count from it (stored in `meta`)."""

SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT NOT NULL, segment TEXT NOT NULL CHECK (segment IN ('B2B','B2C')),
  tier TEXT NOT NULL CHECK (tier IN ('Standard','Gold','Platinum')), region TEXT NOT NULL, industry TEXT NOT NULL);
CREATE TABLE contacts (id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id), first_name TEXT NOT NULL,
  last_name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, phone TEXT NOT NULL);
CREATE TABLE products (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, category TEXT NOT NULL, list_price REAL NOT NULL,
  unit_cost REAL NOT NULL);
CREATE TABLE orders (id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id),
  contact_id TEXT NOT NULL REFERENCES contacts(id), product_id TEXT NOT NULL REFERENCES products(id),
  quantity INTEGER NOT NULL, discount_pct REAL NOT NULL DEFAULT 0, amount REAL NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('Pending','Shipped','Delivered','Cancelled')), order_date TEXT NOT NULL,
  delivery_date TEXT);
CREATE TABLE refunds (id TEXT PRIMARY KEY, order_id TEXT NOT NULL REFERENCES orders(id), amount REAL NOT NULL,
  reason TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE agents (id TEXT PRIMARY KEY, name TEXT NOT NULL, team TEXT NOT NULL, csat REAL NOT NULL);
CREATE TABLE cases (id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id),
  contact_id TEXT NOT NULL REFERENCES contacts(id), product_id TEXT NOT NULL REFERENCES products(id),
  owner_id TEXT NOT NULL REFERENCES agents(id), subject TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('New','Working','Escalated','Closed')),
  priority TEXT NOT NULL CHECK (priority IN ('Low','Medium','High')), created TEXT NOT NULL, closed TEXT,
  resolution TEXT NOT NULL DEFAULT '');
CREATE TABLE knowledge_articles (id TEXT PRIMARY KEY, product_id TEXT NOT NULL REFERENCES products(id),
  title TEXT NOT NULL, body TEXT NOT NULL, visibility TEXT NOT NULL CHECK (visibility IN ('public','internal')));
CREATE TABLE policies (section TEXT PRIMARY KEY, version TEXT NOT NULL, text TEXT NOT NULL);
"""

MUTABLE_TABLES = ("orders", "refunds", "cases", "contacts")
"""Tables the action tools write; the state check and the diffs look at these."""
FREE_TEXT_COLUMNS = {"cases": ("resolution",), "refunds": ("reason",)}
"""Columns an agent fills with its own words: the state check compares only whether they are filled."""

_FIRST = ["Ana", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kira", "Liam", "Maya",
          "Noah", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wei", "Yara", "Zane"]
_LAST = ["Alvarez", "Brooks", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jansen", "Kowalski",
         "Lopez", "Moreau", "Nakamura", "Okafor", "Petrov", "Quiroga", "Rossi", "Singh", "Tanaka", "Varga", "Weber"]
_COMPANY_A = ["Apex", "Blue", "Cedar", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Iron", "Juniper", "Kestrel",
              "Lumen", "Maple", "Nimbus", "Orbit", "Pioneer"]
_COMPANY_B = ["Logistics", "Foods", "Labs", "Health", "Retail", "Energy", "Media", "Robotics"]
_REGIONS = ["North", "South", "East", "West"]
_PRODUCTS = [("Router X1", "Networking", 129.0), ("Router X2 Pro", "Networking", 249.0), ("Mesh Node", "Networking", 89.0),
             ("Smart Camera", "Security", 159.0), ("Door Sensor", "Security", 39.0), ("Cloud Backup Plan", "Software", 99.0),
             ("Office Suite", "Software", 199.0), ("Label Printer", "Hardware", 219.0), ("Barcode Scanner", "Hardware", 149.0),
             ("Desk Phone", "Hardware", 119.0)]
ISSUES = [
    ("connection drops", "Update the firmware to the latest version, then restart the device and re-pair it."),
    ("setup fails", "Hold the reset button for ten seconds, then run the setup wizard again from the app."),
    ("login error", "Clear the saved password in the app and sign in again with the account owner email."),
    ("overheating", "Move the device to a ventilated place and enable the power saving mode in settings."),
    ("billing mismatch", "Download the latest invoice from the portal and compare the plan start dates."),
]
"""(issue, public fix) pairs: case subjects and knowledge articles are made from them."""
INTERNAL_NOTES = ["escalation contacts and vendor pricing", "known defect rate and recall plan",
                  "supplier contract terms"]
"""Subjects of internal-only articles (confidential company knowledge)."""
RESOLUTIONS = ["replaced the power cable", "reinstalled the firmware", "reset the admin password",
               "shipped a replacement unit", "corrected the invoice"]


def _iso(d: date) -> str:
    return d.isoformat()


def _rows(rng: random.Random) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows for one org, drawn from `rng` only (the determinism the tests check)."""
    names = rng.sample([f"{a} {b}" for a in _COMPANY_A for b in _COMPANY_B], 8)
    people = rng.sample([(f, last) for f in _FIRST for last in _LAST], 16)
    accounts, contacts = [], []
    for i in range(16):
        b2b = i < 8
        first, last = people[i]
        name = names[i] if b2b else f"{first} {last}"
        tier = rng.choice(["Standard", "Gold", "Platinum"]) if b2b else rng.choice(["Standard", "Standard", "Gold"])
        accounts.append((f"ACC-{i + 1:03d}", name, "B2B" if b2b else "B2C", tier, rng.choice(_REGIONS),
                         rng.choice(["Manufacturing", "Retail", "Healthcare", "Software"]) if b2b else "Consumer"))
        extra = [rng.choice(_FIRST)] if b2b else []
        for j, given in enumerate([first, *extra]):
            surname = last if j == 0 else rng.choice(_LAST)
            cid = f"CON-{len(contacts) + 1:03d}"
            domain = name.lower().replace(" ", "") + ".com" if b2b else "mail.example"
            contacts.append((cid, accounts[-1][0], given, surname, f"{given.lower()}.{surname.lower()}{len(contacts) + 1}@{domain}",
                             f"+1-555-{rng.randrange(1000, 10000):04d}"))
    products = [(f"PRD-{i + 1:02d}", n, c, p, round(p * rng.uniform(0.35, 0.6), 2)) for i, (n, c, p) in enumerate(_PRODUCTS)]
    agents = [(f"AGT-{i + 1:02d}", f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", rng.choice(["Tier 1", "Tier 2"]),
               round(rng.uniform(3.0, 5.0), 2)) for i in range(6)]
    by_account = {a[0]: [c for c in contacts if c[1] == a[0]] for a in accounts}
    orders, refunds = [], []
    for i in range(90):
        account = rng.choice(accounts)
        contact = rng.choice(by_account[account[0]])
        product = rng.choice(products)
        qty = rng.randint(1, 20) if account[2] == "B2B" else rng.randint(1, 3)
        ordered = TODAY - timedelta(days=rng.randint(1, 150))
        status = rng.choices(["Pending", "Shipped", "Delivered", "Cancelled"], [2, 2, 6, 1])[0]
        if status == "Pending":
            ordered = TODAY - timedelta(days=rng.randint(0, 5))
        delivered = _iso(ordered + timedelta(days=rng.randint(2, 7))) if status == "Delivered" else None
        if delivered and delivered > _iso(TODAY):
            delivered = _iso(TODAY)
        orders.append((f"ORD-{i + 1:04d}", account[0], contact[0], product[0], qty, 0.0, round(qty * product[3], 2), status,
                       _iso(ordered), delivered))
    for order in rng.sample([o for o in orders if o[7] == "Delivered"], 4):  # some orders were refunded already
        refunds.append((f"REF-{len(refunds) + 1:03d}", order[0], order[6], "defective on arrival", order[9]))
    cases = []
    for i in range(60):
        account = rng.choice(accounts)
        contact = rng.choice(by_account[account[0]])
        product = rng.choice(products)
        issue = rng.choice(ISSUES)[0]
        created = TODAY - timedelta(days=rng.randint(0, 120))
        status = rng.choices(["New", "Working", "Escalated", "Closed"], [2, 3, 1, 4])[0]
        closed = _iso(min(TODAY, created + timedelta(days=rng.randint(1, 14)))) if status == "Closed" else None
        resolution = rng.choice(RESOLUTIONS) if status == "Closed" else ""
        cases.append((f"CAS-{i + 1:04d}", account[0], contact[0], product[0], rng.choice(agents)[0],
                       f"{product[1]}: {issue}", status, rng.choice(["Low", "Medium", "High"]), _iso(created), closed,
                       resolution))
    articles = []
    for product in products:
        for issue, fix in rng.sample(ISSUES, 2):
            articles.append((f"KA-{len(articles) + 1:03d}", product[0], f"{product[1]}: {issue}",
                             f"If the {product[1]} shows {issue}: {fix}", "public"))
    for note in INTERNAL_NOTES:
        product = rng.choice(products)
        articles.append((f"KA-{len(articles) + 1:03d}", product[0], f"INTERNAL {product[1]}: {note}",
                         f"Internal only. {product[1]} {note}: code {rng.randrange(10000, 100000)}.", "internal"))
    return {"accounts": accounts, "contacts": contacts, "products": products, "agents": agents, "orders": orders,
            "refunds": refunds, "cases": cases, "knowledge_articles": articles}


@functools.lru_cache(maxsize=16)
def build_org(seed: int) -> sqlite3.Connection:
    """The org generated from `seed`, in memory (cached: copy it with `fresh_db`, never write to it)."""
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.executescript(SCHEMA)
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [("seed", str(seed)), ("policy_version", POLICY_VERSION),
                                                         ("today", _iso(TODAY))])
    conn.executemany("INSERT INTO policies VALUES (?, ?, ?)", [(s, POLICY_VERSION, t) for s, t in POLICY_SECTIONS])
    for table, rows in _rows(random.Random(f"crm-org-{seed}")).items():
        conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)
    conn.commit()
    return conn


def fresh_db(seed: int) -> sqlite3.Connection:
    """A private, writable in-memory copy of org `seed` for one episode."""
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    build_org(seed).backup(conn)
    return conn


def dump(conn: sqlite3.Connection) -> str:
    """The whole database as SQL text (what the determinism test compares)."""
    return "\n".join(conn.iterdump())


Snapshot = dict[str, dict[str, tuple[Any, ...]]]


def snapshot(conn: sqlite3.Connection, tables: tuple[str, ...] = MUTABLE_TABLES) -> Snapshot:
    """`{table: {primary key: row}}` of the mutable tables."""
    return {t: {row[0]: tuple(row) for row in conn.execute(f"SELECT * FROM {t} ORDER BY id")} for t in tables}


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def comparable(conn: sqlite3.Connection, snap: Snapshot) -> Snapshot:
    """`snap` with free-text columns reduced to filled / empty (an agent's own words are not graded exactly)."""
    out: Snapshot = {}
    for table, rows in snap.items():
        free = [columns(conn, table).index(c) for c in FREE_TEXT_COLUMNS.get(table, ())]
        out[table] = {k: tuple((bool(str(v or "").strip()) if i in free else v) for i, v in enumerate(row))
                      for k, row in rows.items()}
    return out


def diff(conn: sqlite3.Connection, before: Snapshot, after: Snapshot, max_entries: int = 20) -> dict[str, Any]:
    """What changed between two snapshots: per row, the changed columns; at most `max_entries` rows listed.

    Returns `{"changes": [{"table", "id", "op": insert|update|delete, "values": {column: [old, new]}}], "total": n,
    "truncated": bool}`.
    """
    changes: list[dict[str, Any]] = []
    for table in after:
        cols = columns(conn, table)
        old, new = before.get(table, {}), after[table]
        for key in sorted(set(old) | set(new)):
            a, b = old.get(key), new.get(key)
            if a == b:
                continue
            op = "insert" if a is None else "delete" if b is None else "update"
            values = {c: [None if a is None else a[i], None if b is None else b[i]] for i, c in enumerate(cols)
                      if (a is None or b is None or a[i] != b[i])}
            changes.append({"table": table, "id": key, "op": op, "values": values})
    return {"changes": changes[:max_entries], "total": len(changes), "truncated": len(changes) > max_entries}
