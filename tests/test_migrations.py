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
