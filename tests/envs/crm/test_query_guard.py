"""The read-only `query` tool: every write form is refused with a named error, runaway queries stop (spec §6.4)."""

import pytest

from rltrain.envs.crm.actions import run_query
from rltrain.envs.crm.db import dump, fresh_db


@pytest.mark.parametrize(("sql", "error"), [
    ("INSERT INTO refunds VALUES ('R', 'ORD-0001', 1, 'x', '2025-01-01')", "write_refused"),
    ("UPDATE cases SET status = 'Closed'", "write_refused"),
    ("DELETE FROM contacts", "write_refused"),
    ("REPLACE INTO meta VALUES ('today', '2030-01-01')", "write_refused"),
    ("CREATE TABLE t (x)", "write_refused"),
    ("DROP TABLE orders", "write_refused"),
    ("ALTER TABLE orders ADD COLUMN y", "write_refused"),
    ("WITH doomed AS (SELECT id FROM cases) DELETE FROM cases WHERE id IN (SELECT id FROM doomed)", "write_refused"),
    ("WITH x AS (SELECT 1) UPDATE orders SET amount = 0", "write_refused"),
    ("BEGIN", "write_refused"),
    ("ATTACH DATABASE ':memory:' AS other", "attach_refused"),
    ("PRAGMA query_only = OFF", "pragma_refused"),
    ("PRAGMA table_info(orders)", "pragma_refused"),
    ("SELECT 1; DELETE FROM cases", "multiple_statements"),
    ("SELECT 1; SELECT 2;", "multiple_statements"),
])
def test_each_write_form_is_refused_and_nothing_changes(sql: str, error: str) -> None:
    conn = fresh_db(1)
    before = dump(conn)
    outcome = run_query(conn, sql)
    assert outcome.error == error, outcome.observation
    assert outcome.observation.startswith(error)
    assert dump(conn) == before
    assert run_query(conn, "SELECT COUNT(*) FROM cases").error is None  # the guard is lifted after each call
    conn.execute("UPDATE cases SET priority = 'Low'")  # and the env's own connection can still write


def test_reads_work_with_a_trailing_semicolon_and_comments() -> None:
    outcome = run_query(fresh_db(1), "SELECT id, name FROM products WHERE id = 'PRD-01'; -- the first product")
    assert outcome.error is None
    assert outcome.observation.splitlines() == ['["id", "name"]', '["PRD-01", "Router X1"]']


def test_runaway_query_stops_at_the_time_limit() -> None:
    sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT COUNT(*) FROM n"
    outcome = run_query(fresh_db(1), sql, time_limit_s=0.2)
    assert outcome.error == "query_timeout"


def test_row_cap_cuts_and_says_so() -> None:
    outcome = run_query(fresh_db(1), "SELECT id FROM orders", max_rows=7)
    lines = outcome.observation.splitlines()
    assert outcome.error is None and len(lines) == 1 + 7 + 1 and "row cap" in lines[-1]


def test_sql_errors_are_named() -> None:
    assert run_query(fresh_db(1), "SELECT nope FROM orders").error == "sql_error"
    assert run_query(fresh_db(1), "   ").error == "bad_arguments"
