"""Database plumbing: SQLite pragmas and where the migrations live."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_installed = False


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while a host writes; the busy timeout queues writers
    # of the several processes instead of failing them with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# A connection used this recently is not pinged when it is checked out again.
PING_AFTER_IDLE_SECONDS = 1.0
_IDLE_SINCE = "openwa_idle_since"


def ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection at checkout only if it sat idle for PING_AFTER_IDLE_SECONDS
    (a server restarted meanwhile is found before a request uses it; the pool then
    replaces the connection). A connection that dies within that second fails its first
    statement instead, which the pool turns into a fresh pool: a 503 for that request."""

    def checkin(dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return  # just connected, or used a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception:  # noqa: BLE001 - any failure means this connection is gone
            alive = False
        if not alive:
            raise DisconnectionError("connection lost while idle in the pool")

    event.listen(engine, "checkin", checkin)
    event.listen(engine, "checkout", checkout)


def install_sqlite_pragmas() -> None:
    global _installed
    if not _installed:
        event.listen(Engine, "connect", _sqlite_pragmas)
        _installed = True
