"""The send path's reads are planned on an index whatever the table's statistics (scale,
issue 18). On real databases that were never analysed (a young table; a PostgreSQL server
without autovacuum, as on this machine and in CI; SQLite, which has none unless asked), with
a long history in one session: a doorbell pass's read and the read behind a batch of acks
search by key. Before the fix, on PostgreSQL the pass read the whole table and the acks the
session's whole history (SQLite: the pass scanned the table), once per send and once per
batch of acks: a per-send cost that grew with the history, on the session host's main
thread (`make bench-history`, 200,000 messages: p50 58.5 ms instead of 15.4, PostgreSQL
CPU 42.9 ms per send instead of 2.2)."""
from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import text
from sqlalchemy.sql import Executable

from app import create_app
from app.extensions import db
from app.services import events, messages
from tests.conftest import make_config
from tests.databases import postgres_database

HISTORY = 20_000
#: Pages a read by key may touch (index root and leaf, a heap page or two per row); the
#: table itself is several hundred.
FEW_PAGES = 40


_SESSION = ("INSERT INTO sessions (id, name, status, desired_state, lease_token, "
            "reconnect_attempts, created_at, updated_at) "
            "VALUES ('s1', 's1', 'ready', 'running', 0, 0, :now, :now)")
_HISTORY = ("WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :n) "
            "INSERT INTO messages (id, session_id, wa_message_id, chat_id, recipient, from_me, "
            "type, body, status, timestamp, created_at, updated_at, starred) "
            "SELECT 'm' || n, 's1', 'true_1555@c.us_m' || n, '1555@c.us', '1555@c.us', true, "
            "'text', 'hello', 'sent', 1, :now, :now, false FROM g")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def unanalysed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               redis_available: str) -> Iterator[Flask]:
    """A migrated database whose `messages` table holds HISTORY sent messages of session
    `s1` and was never analysed (on PostgreSQL autovacuum is off for it, so it stays so)."""
    with contextlib.ExitStack() as stack:
        folder = tmp_path_factory.mktemp("plans")
        url = (str(folder / "plans.db") if request.param == "sqlite"
               else stack.enter_context(postgres_database()))
        app = create_app(make_config(folder, (request.param, url), redis_available))
        with app.app_context():
            upgrade()
            with db.engine.begin() as conn:
                if request.param == "postgres":
                    conn.execute(text("ALTER TABLE messages SET (autovacuum_enabled = false)"))
                now = {"now": datetime.now(timezone.utc)}
                conn.execute(text(_SESSION), now)
                conn.execute(text(_HISTORY), {"n": HISTORY, **now})
                # The pass's own send, and an older one left unsettled above the watermark.
                conn.execute(text("UPDATE messages SET status = 'pending' "
                                  "WHERE id IN (:older, :own)"),
                             {"older": f"m{HISTORY - 5}", "own": f"m{HISTORY}"})
                if request.param == "postgres":
                    analysed = conn.execute(text(
                        "SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables "
                        "WHERE relname = 'messages'")).one()
                    assert analysed == (None, None)
                else:
                    assert not conn.execute(text(
                        "SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")).all()
        try:
            yield app
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


def _sql(statement: Executable, params: dict[str, Any]) -> str:
    """The statement as the app's dialect renders it, the values written in."""
    return str(statement.params(**params).compile(dialect=db.engine.dialect, compile_kwargs={
        "literal_binds": True, "render_postcompile": True}))


def _scans_whole_table(app: Flask, statement: Executable, params: dict[str, Any]) -> list[str]:
    """How the statement reaches `messages` when it reads every row: PostgreSQL's
    sequential scans and scans touching more than FEW_PAGES pages, SQLite's SCAN steps."""
    with app.app_context(), db.engine.connect() as conn:
        sql = _sql(statement, params)
        if db.engine.dialect.name == "sqlite":
            steps = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
            assert steps, sql
            return [step for step in steps if step.startswith("SCAN messages")]
        plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}").scalar()
        table_pages = int(conn.exec_driver_sql(
            "SELECT pg_relation_size('messages') / current_setting('block_size')::int").scalar())
    assert table_pages > 4 * FEW_PAGES  # the history is long enough to tell the two apart
    root = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    whole = [n["Node Type"] for n in _nodes(root)
             if n.get("Relation Name") == "messages" and n["Node Type"] == "Seq Scan"]
    pages = int(root.get("Shared Hit Blocks", 0)) + int(root.get("Shared Read Blocks", 0))
    return whole + ([f"{pages} pages"] if pages > FEW_PAGES else [])


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def test_a_pass_reads_its_sends_by_key_on_an_unanalysed_table(unanalysed: Flask) -> None:
    own, older = f"m{HISTORY}", f"m{HISTORY - 5}"
    params = {"ids": [own], "after": HISTORY - 10, "in_session": "s1"}
    assert _scans_whole_table(unanalysed, messages._PASS_ROWS_SINCE, params) == []
    # And it reads what the pass needs: its own send, and the older unsettled one first.
    with unanalysed.app_context():
        mine, unsettled = messages.pass_rows("s1", [own], HISTORY - 10)
    assert [m for m, _ in mine] == [own]
    assert [row.id for row in unsettled] == [older]


def test_acks_look_up_unsettled_sends_by_key_on_an_unanalysed_table(unanalysed: Flask) -> None:
    params = {"in_session": "s1", "ids": [f"m{HISTORY}", "m17", "not-ours"]}
    assert _scans_whole_table(unanalysed, events._UNSETTLED_ACKED, params) == []
    with unanalysed.app_context():
        found = [row.id for row in db.session.execute(events._UNSETTLED_ACKED, params)]
    assert found == [f"m{HISTORY}"]  # `m17` is sent already, `not-ours` is no message
