"""The send path's reads are planned on an index whatever the table's statistics (scale,
issue 18). On a real PostgreSQL database that has never been analysed (a young table, or a
server without autovacuum, as on this machine and in CI), with a long history in one
session: a doorbell pass's read and the read behind a batch of acks touch a handful of
pages, not the whole table. Before the fix both read every page of the table (a sequential
or session-wide scan), once per send and once per batch of acks: a per-send cost that grew
with the history, on the session host's main thread."""
from __future__ import annotations

import json
from collections.abc import Iterator
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


@pytest.fixture(scope="module")
def unanalysed(tmp_path_factory: pytest.TempPathFactory, redis_available: str) -> Iterator[Flask]:
    """A migrated database whose `messages` table holds HISTORY sent messages of session
    `s1` and was never analysed (autovacuum off for it, so it stays that way)."""
    with postgres_database() as url:
        config = make_config(tmp_path_factory.mktemp("plans"), ("postgres", url), redis_available)
        app = create_app(config)
        with app.app_context():
            upgrade()
            with db.engine.begin() as conn:
                conn.execute(text("ALTER TABLE messages SET (autovacuum_enabled = false)"))
                conn.execute(text(
                    "INSERT INTO sessions (id, name, status, desired_state, lease_token, "
                    "reconnect_attempts, created_at, updated_at) "
                    "VALUES ('s1', 's1', 'ready', 'running', 0, 0, now(), now())"))
                conn.execute(text(
                    "INSERT INTO messages (id, session_id, wa_message_id, chat_id, recipient, "
                    "from_me, type, body, status, timestamp, created_at, updated_at, starred) "
                    "SELECT 'm' || g, 's1', 'true_1555@c.us_m' || g, '1555@c.us', '1555@c.us', "
                    "true, 'text', 'hello', 'sent', 1, now(), now(), false "
                    "FROM generate_series(1, :n) AS g"), {"n": HISTORY})
                # The pass's own send, and an older one left unsettled above the watermark.
                conn.execute(text("UPDATE messages SET status = 'pending' "
                                  "WHERE id IN (:older, :own)"),
                             {"older": f"m{HISTORY - 5}", "own": f"m{HISTORY}"})
                analysed = conn.execute(text(
                    "SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables "
                    "WHERE relname = 'messages'")).one()
            assert analysed == (None, None)
        try:
            yield app
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


def _explain(app: Flask, statement: Executable, params: dict[str, Any]) -> dict[str, Any]:
    """The statement's executed plan, with the pages it touched (its SQL as the app's
    dialect renders it, the values written in, as psycopg2 sends them)."""
    with app.app_context():
        sql = str(statement.params(**params).compile(dialect=db.engine.dialect, compile_kwargs={
            "literal_binds": True, "render_postcompile": True}))
        with db.engine.connect() as conn:
            plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}").scalar()
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _pages(plan: dict[str, Any]) -> int:
    return int(plan.get("Shared Hit Blocks", 0)) + int(plan.get("Shared Read Blocks", 0))


def _table_pages(app: Flask) -> int:
    with app.app_context(), db.engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT pg_relation_size('messages') / current_setting('block_size')::int")).scalar())


def test_a_pass_reads_its_sends_by_key_on_an_unanalysed_table(unanalysed: Flask) -> None:
    own, older = f"m{HISTORY}", f"m{HISTORY - 5}"
    params = {"ids": [own], "after": HISTORY - 10, "in_session": "s1"}
    plan = _explain(unanalysed, messages._PASS_ROWS_SINCE, params)
    scans = [n["Node Type"] for n in _nodes(plan) if n.get("Relation Name") == "messages"]
    assert "Seq Scan" not in scans, plan
    assert _pages(plan) <= FEW_PAGES < _table_pages(unanalysed) // 4, (_pages(plan), plan)
    # And it reads what the pass needs: its own send, and the older unsettled one first.
    with unanalysed.app_context():
        mine, unsettled = messages.pass_rows("s1", [own], HISTORY - 10)
    assert [m for m, _ in mine] == [own]
    assert [row.id for row in unsettled] == [older]


def test_acks_look_up_unsettled_sends_by_key_on_an_unanalysed_table(unanalysed: Flask) -> None:
    params = {"in_session": "s1", "ids": [f"m{HISTORY}", "m17", "not-ours"]}
    plan = _explain(unanalysed, events._UNSETTLED_ACKED, params)
    scans = [n["Node Type"] for n in _nodes(plan) if n.get("Relation Name") == "messages"]
    assert "Seq Scan" not in scans, plan
    assert _pages(plan) <= FEW_PAGES < _table_pages(unanalysed) // 4, (_pages(plan), plan)
    with unanalysed.app_context():
        found = [row.id for row in db.session.execute(events._UNSETTLED_ACKED, params)]
    assert found == [f"m{HISTORY}"]  # `m17` is sent already, `not-ours` is no message
