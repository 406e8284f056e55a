"""PostgreSQL connections are pinged at checkout only after sitting idle (app/db_setup.py):
a connection the server dropped while it sat in the pool is replaced before a request uses
it; one used a moment ago is trusted, and if it died meanwhile its first statement fails
once and the pool is renewed."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app import create_app
from app.db_setup import PING_AFTER_IDLE_SECONDS
from app.extensions import db
from tests.conftest import make_config
from tests.databases import _admin_conninfo, admin_query, postgres_database


@pytest.fixture
def pg_app(tmp_path, redis_available):
    with postgres_database() as url:
        app = create_app(make_config(tmp_path, ("postgres", url), redis_available))
        yield app
        with app.app_context():
            db.engine.dispose()


def backend_pid(app) -> int:
    with app.app_context():
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        db.session.commit()
        return int(pid)


def terminate(pid: int) -> None:
    admin_query(_admin_conninfo(), "SELECT pg_terminate_backend(%s)", (pid,))
    for _ in range(50):  # until the server has let go of it
        if not admin_query(_admin_conninfo(), "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)):
            return
        time.sleep(0.02)


def test_a_connection_dropped_while_idle_is_replaced_before_it_is_used(pg_app):
    first = backend_pid(pg_app)
    assert backend_pid(pg_app) == first  # the pool hands back the same connection
    terminate(first)
    time.sleep(PING_AFTER_IDLE_SECONDS + 0.2)
    second = backend_pid(pg_app)  # no error: the ping found it dead
    assert second != first


def test_a_connection_used_a_moment_ago_is_not_pinged(pg_app):
    first = backend_pid(pg_app)
    terminate(first)
    with pytest.raises(OperationalError):  # trusted without a ping: its statement fails
        backend_pid(pg_app)
    assert backend_pid(pg_app) != first  # and the pool has been renewed
