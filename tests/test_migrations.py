"""Alembic: one head, upgrade → downgrade → upgrade on SQLite and PostgreSQL, and the
migrated schema equals the models (no change waiting to be generated)."""
from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from app import create_app
from app.db_setup import MIGRATIONS_DIR
from app.extensions import db
from tests.conftest import make_config
from tests.databases import postgres_database


def test_there_is_a_single_head():
    config = AlembicConfig(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_database(request, tmp_path: Path):
    if request.param == "sqlite":
        yield "sqlite", str(tmp_path / "migrate.db")
    else:
        with postgres_database() as url:
            yield "postgres", url


def test_upgrade_downgrade_upgrade_and_models_match(fresh_database, tmp_path, redis_available):
    app = create_app(make_config(tmp_path, fresh_database, redis_available))
    with app.app_context():
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        assert {"api_keys", "sessions", "messages", "idempotency_keys", "hosts"} <= tables
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                    db.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        db.engine.dispose()


def test_message_counts_are_backfilled_from_the_stored_messages(
        fresh_database, tmp_path, redis_available):
    """Upgrading a database that already holds messages counts them (0003 → 0004), and the
    triggers count what comes after."""
    from sqlalchemy import text

    app = create_app(make_config(tmp_path, fresh_database, redis_available))
    with app.app_context():
        upgrade(revision="0003")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO sessions (id, name, status, desired_state, lease_token, "
                              "reconnect_attempts, created_at, updated_at) VALUES "
                              "('s1', 'one', 'created', 'stopped', 0, 0, :now, :now)"),
                         {"now": "2026-01-01 00:00:00+00:00"})
            for i, (chat, from_me) in enumerate([("a@c.us", False)] * 3 + [("a@c.us", True)]
                                                + [("b@c.us", False)] * 2):
                conn.execute(text("INSERT INTO messages (id, session_id, chat_id, from_me, type, "
                                  "status, timestamp, created_at, updated_at) VALUES "
                                  "(:id, 's1', :chat, :from_me, 'text', 'sent', :ts, :now, :now)"),
                             {"id": f"m{i}", "chat": chat, "from_me": from_me, "ts": i,
                              "now": "2026-01-01 00:00:00+00:00"})
        upgrade()

        def counts():
            with db.engine.connect() as conn:
                return {(c, bool(f)): n for c, f, n in conn.execute(text(
                    "SELECT chat_id, from_me, n FROM message_counts WHERE n > 0"))}

        assert counts() == {("a@c.us", False): 3, ("a@c.us", True): 1, ("b@c.us", False): 2}
        with db.engine.begin() as conn:
            conn.execute(text("DELETE FROM messages WHERE chat_id = 'b@c.us'"))
            conn.execute(text("INSERT INTO messages (id, session_id, chat_id, from_me, type, "
                              "status, timestamp, created_at, updated_at) VALUES "
                              "('m9', 's1', 'c@c.us', true, 'text', 'sent', 9, :now, :now)"),
                         {"now": "2026-01-01 00:00:00+00:00"})
        assert counts() == {("a@c.us", False): 3, ("a@c.us", True): 1, ("c@c.us", True): 1}
        db.engine.dispose()


def test_existing_webhooks_get_inline_media_off_and_a_downgrade_drops_it(
        fresh_database, tmp_path, redis_available):
    """0010 → 0011 (issue 12.4): a webhook registered before keeps delivering what it did
    (inline_media false, from the server default); downgrading removes the column."""
    from sqlalchemy import text

    app = create_app(make_config(tmp_path, fresh_database, redis_available))
    with app.app_context():
        upgrade(revision="0010_batches")
        now = "2026-01-01 00:00:00+00:00"
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO sessions (id, name, status, desired_state, lease_token, "
                              "reconnect_attempts, created_at, updated_at) VALUES "
                              "('s1', 'one', 'created', 'stopped', 0, 0, :now, :now)"), {"now": now})
            conn.execute(text("INSERT INTO webhooks (id, session_id, url, events, active, "
                              "created_at, updated_at) VALUES ('w1', 's1', 'http://example.com/h', "
                              "'[\"*\"]', true, :now, :now)"), {"now": now})
        upgrade(revision="0011_webhook_inline_media")
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT inline_media FROM webhooks WHERE id = 'w1'")).scalar() in (False, 0)
        downgrade(revision="0010_batches")
        columns = {c["name"] for c in inspect(db.engine).get_columns("webhooks")}
        assert "inline_media" not in columns and "filters" in columns
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT url FROM webhooks WHERE id = 'w1'")).scalar() == "http://example.com/h"
        db.engine.dispose()
