"""Throwaway databases on the real servers: a SQLite file, or a fresh PostgreSQL database."""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
from sqlalchemy.engine import make_url

from tests.tooling import missing

# The server the tests create their databases on (trust auth on this machine and in CI).
ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")


def _admin_conninfo() -> str:
    url = make_url(ADMIN_URL)
    parts = [f"host={url.host or '127.0.0.1'}", f"port={url.port or 5432}",
             f"dbname={url.database or 'postgres'}", f"user={url.username or 'postgres'}"]
    if url.password:
        parts.append(f"password={url.password}")
    return " ".join(parts)


def admin_query(conninfo: str, statement: str, params: tuple[object, ...] = (),
                connect_timeout: int | None = None) -> list[tuple[object, ...]]:
    """Run one statement in autocommit (CREATE/DROP DATABASE need it); its rows, if any."""
    extra = {} if connect_timeout is None else {"connect_timeout": connect_timeout}
    conn = psycopg2.connect(conninfo, **extra)
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(statement, params or None)
            return list(cursor.fetchall()) if cursor.description else []
    finally:
        conn.close()


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create ``openwa_test_<random>``, yield its URL, drop it afterwards."""
    name = f"openwa_test_{uuid.uuid4().hex[:12]}"
    try:
        admin_query(_admin_conninfo(), f'CREATE DATABASE "{name}"', connect_timeout=5)
    except psycopg2.OperationalError as error:
        missing(f"PostgreSQL at {ADMIN_URL} is not reachable: {error}")
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        admin_query(_admin_conninfo(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def env_for(backend: str, url_or_path: str) -> dict[str, str]:
    """Environment variables that point a process at a test database."""
    if backend == "postgres":
        return {"DATABASE_TYPE": "postgres", "DATABASE_URL": url_or_path}
    return {"DATABASE_TYPE": "sqlite", "DATABASE_SQLITE_PATH": str(Path(url_or_path))}


def head_revision() -> str:
    """The newest Alembic revision (what `openwa db upgrade` brings a database to)."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    from app.db_setup import MIGRATIONS_DIR

    config = AlembicConfig(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head
