"""The CRM database: schema creation and deterministic generation (spec §6.4: a seeded local stand-in org)."""

from rltrain.envs.crm.db import build_org, diff, dump, fresh_db, snapshot
from rltrain.envs.crm.policy import POLICY_VERSION


def test_schema_has_every_table_with_rows_and_the_policy_version() -> None:
    conn = fresh_db(1)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"meta", "accounts", "contacts", "products", "orders", "refunds", "agents", "cases",
                      "knowledge_articles", "policies"}
    for table in tables - {"meta"}:
        assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] > 0, table
    assert dict(conn.execute("SELECT key, value FROM meta"))["policy_version"] == POLICY_VERSION
    assert {r[0] for r in conn.execute("SELECT DISTINCT version FROM policies")} == {POLICY_VERSION}
    segments = dict(conn.execute("SELECT segment, COUNT(*) FROM accounts GROUP BY segment"))
    assert segments == {"B2B": 8, "B2C": 8}  # both kinds of org in one DB
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_generation_is_deterministic_in_the_seed() -> None:
    build_org.cache_clear()
    first = dump(fresh_db(3))
    build_org.cache_clear()  # regenerate from scratch, not from the cache
    assert dump(fresh_db(3)) == first
    assert dump(fresh_db(4)) != first


def test_each_episode_gets_a_private_copy_and_a_capped_diff() -> None:
    a, b = fresh_db(1), fresh_db(1)
    before = snapshot(a)
    a.execute("UPDATE cases SET status = 'Closed', resolution = 'x'")
    after = snapshot(a)
    assert snapshot(b) == before  # b (and the cached org) unchanged
    d = diff(a, before, after, max_entries=5)
    changed = sum(1 for row in before["cases"].values() if (row[6], row[10]) != ("Closed", "x"))
    assert d["total"] == changed and len(d["changes"]) == 5 and d["truncated"]
    assert d["changes"][0]["op"] == "update" and d["changes"][0]["values"]["status"][1] == "Closed"
