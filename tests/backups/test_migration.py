"""Migration 0003 (the backups table) upgrades and downgrades on SQLite and PostgreSQL
(the head revision comes after it)."""
from __future__ import annotations

from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from app.extensions import db
from app.services.backups import current_revision
from tests.backups.conftest import Deployment
from tests.databases import head_revision


def _state(deployment: Deployment) -> tuple[str | None, bool, list[str]]:
    with deployment.context():
        inspector = inspect(db.engine)
        has = inspector.has_table("backups")
        indexes = sorted(i["name"] for i in inspector.get_indexes("backups")) if has else []
        revision = current_revision()
        db.engine.dispose()
    return revision, has, indexes


def test_upgrade_downgrade_upgrade(deployment: Deployment):
    assert _state(deployment) == (head_revision(), True, ["ix_backups_status_started"])
    with deployment.context():
        db.session.execute(text(
            "INSERT INTO backups (id, status, \"trigger\", storage, location, database_backend,"
            " started_at, heartbeat_at) VALUES ('20260101T000000Z-abcdef', 'completed', "
            "'manual', 'local', '/x', 'sqlite', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        db.session.commit()
        downgrade(revision="0001")
        db.engine.dispose()
    assert _state(deployment) == ("0001", False, [])
    with deployment.context():
        upgrade()
        db.engine.dispose()
    assert _state(deployment) == (head_revision(), True, ["ix_backups_status_started"])
