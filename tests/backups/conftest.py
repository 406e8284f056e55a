"""A throwaway deployment per test: a private database (SQLite file or a new PostgreSQL
database), migrated, with its own session profiles folder and backup folder."""
from __future__ import annotations

import base64
import os
import secrets
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import MetaData, inspect, select, text

from app import create_app
from app.config import Config
from app.extensions import db
from app.models import ApiKey, Host, IdempotencyKey, Message, Session, utcnow
from tests.databases import env_for, postgres_database
from tests.tooling import require_binary

PG_TOOLS_HINT = "install the PostgreSQL client tools (Debian: postgresql-client)"


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Deployment:
    """One OpenWA deployment under test: its app, config and folders."""

    backend: str
    app: Flask
    config: Config
    root: Path
    cleanup: ExitStack = field(default_factory=ExitStack)

    @property
    def sessions_dir(self) -> Path:
        return self.config.session_data_path

    @property
    def backups_dir(self) -> Path:
        return self.config.backup_path

    def context(self):  # type: ignore[no-untyped-def]
        return self.app.app_context()

    # -- data ------------------------------------------------------------------------
    def seed(self, sessions: int = 2, messages: int = 30) -> None:
        """Rows in every table, with JSON, booleans, NULLs, timestamps and unicode."""
        with self.context():
            key = ApiKey(name="seed", key_hash=secrets.token_hex(32), key_prefix="owa_k1_seed",
                         role="admin", allowed_sessions=["s-0"], allowed_ips=None)
            db.session.add(key)
            db.session.add(Host(name="host@old", capacity=5, held=0,
                                last_heartbeat=utcnow() - timedelta(days=2), version="0.1.0"))
            for s in range(sessions):
                session = Session(name=f"s-{s}", status="ready", desired_state="stopped",
                                  phone=f"1555000{s:04d}", push_name="Zoë ✓")
                db.session.add(session)
                db.session.flush()
                for m in range(messages):
                    message = Message(id=uuid.uuid4().hex, session_id=session.id,
                                      wa_message_id=f"true_{s}_{m}", chat_id="15550000000@c.us",
                                      from_me=m % 2 == 0, body=f"message {m} — ünïcode",
                                      media={"mimetype": "image/png", "size": m} if m % 5 == 0
                                      else None,
                                      mentions=["1@c.us"] if m % 7 == 0 else None,
                                      status="read", timestamp=1_700_000_000 + m)
                    db.session.add(message)
                    if m == 0:
                        db.session.flush()
                        db.session.add(IdempotencyKey(api_key_id=key.id, key=f"k-{s}",
                                                      request_hash="0" * 64,
                                                      session_id=session.id,
                                                      message_id=message.id))
            db.session.commit()

    def tables(self, exclude: tuple[str, ...] = ("backups", "audit_log")) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table (reflected, so tables the models lack count too), but the
        bookkeeping of backups themselves: their rows and the audit entries they add."""
        with self.context():
            metadata = MetaData()
            metadata.reflect(bind=db.engine)
            result = {}
            with db.engine.connect() as connection:
                for name, table in sorted(metadata.tables.items()):
                    if name in exclude:
                        continue
                    order = list(table.primary_key.columns) or list(table.columns)
                    rows = connection.execute(select(table).order_by(*order)).all()
                    result[name] = [tuple(row) for row in rows]
            db.session.remove()
            return result

    def table_names(self) -> set[str]:
        with self.context():
            names = set(inspect(db.engine).get_table_names())
            db.engine.dispose()
            return names

    def wipe_database(self) -> None:
        """The disaster: every table gone."""
        with self.context():
            db.session.remove()
            metadata = MetaData()
            metadata.reflect(bind=db.engine)
            metadata.drop_all(bind=db.engine)
            db.engine.dispose()
        assert self.table_names() == set()

    def add_table(self, name: str) -> None:
        with self.context():
            with db.engine.begin() as connection:
                connection.execute(text(f'CREATE TABLE "{name}" (id INTEGER PRIMARY KEY)'))
                connection.execute(text(f'INSERT INTO "{name}" (id) VALUES (1)'))
            db.engine.dispose()

    # -- session profiles --------------------------------------------------------------
    def make_profiles(self) -> None:
        """Two profiles with nested files, plus what backups leave out."""
        for name in ("session-a", "session-b"):
            profile = self.sessions_dir / name
            (profile / "Default" / "Local Storage" / "leveldb").mkdir(parents=True)
            (profile / "mock-profile.json").write_text(f'{{"linked": true, "phone": "{name}"}}')
            (profile / "Default" / "Local Storage" / "leveldb" / "000003.log").write_bytes(
                os.urandom(200_000))
            (profile / "Default" / "Local Storage" / "leveldb" / "LOCK").write_bytes(b"")
            (profile / "SingletonLock").symlink_to("somehost-12345")
            (profile / "Default" / "Cookies.lock").write_text("x")
            (profile / "Default" / "Preferences").write_text('{"profile": {"name": "Zoë"}}')
            (profile / "Default" / "Cache" / "Cache_Data").mkdir(parents=True)
            (profile / "Default" / "Cache" / "Cache_Data" / "data_0").write_bytes(b"cached")
            (profile / "empty").mkdir()
        (self.sessions_dir / "_mocknet" / "15550001" / "inbox").mkdir(parents=True)
        (self.sessions_dir / "_mocknet" / "15550001" / "inbox" / "1.json").write_text("{}")

    def profile_files(self) -> dict[str, bytes | str]:
        """Everything under SESSION_DATA_PATH: file contents, link targets, empty folders."""
        found: dict[str, bytes | str] = {}
        for path in sorted(self.sessions_dir.rglob("*")):
            relative = path.relative_to(self.sessions_dir).as_posix()
            if path.is_symlink():
                found[relative] = f"-> {os.readlink(path)}"
            elif path.is_file():
                found[relative] = path.read_bytes()
            elif path.is_dir() and not any(path.iterdir()):
                found[relative] = "<empty dir>"
        return found


def expected_in_backup(files: dict[str, bytes | str]) -> dict[str, bytes | str]:
    """What a backup keeps of ``profile_files()``: no mock network, locks or caches."""
    def kept(relative: str) -> bool:
        name = relative.rsplit("/", 1)[-1]
        return not (relative.startswith("_mocknet") or name in ("LOCK", "SingletonLock")
                    or name.endswith(".lock") or "/Cache/" in relative)
    return {path: content for path, content in files.items() if kept(path)}


def make_deployment(tmp_path: Path, backend: str, url_or_path: str, **env: str) -> Deployment:
    environ = {
        **env_for(backend, url_or_path),
        "DATA_PATH": str(tmp_path / "data"),
        "SESSION_DATA_PATH": str(tmp_path / "sessions"),
        "BACKUP_PATH": str(tmp_path / "backups"),
        "STORAGE_LOCAL_PATH": str(tmp_path / "media"),
        "ENCRYPTION_KEY": new_key(),
        "LOG_FORMAT": "text",
        "LOG_LEVEL": "warning",
        **env,
    }
    config = Config.from_env(environ)
    config.session_data_path.mkdir(parents=True, exist_ok=True)
    flask_app = create_app(config)
    flask_app.config["TESTING"] = True
    with flask_app.app_context():
        upgrade()
        db.engine.dispose()
    return Deployment(backend, flask_app, config, tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """A migrated deployment on SQLite, then on PostgreSQL (with the real pg_dump)."""
    with ExitStack() as stack:
        if request.param == "postgres":
            for tool in ("pg_dump", "pg_restore", "psql"):
                require_binary(tool, PG_TOOLS_HINT)
            url = stack.enter_context(postgres_database())
        else:
            url = str(tmp_path / "openwa.db")
        made = make_deployment(tmp_path, request.param, url)
        yield made
        with made.context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def backdate(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """``backdate(days)``: the next backups get ids (their time, for retention) that many
    days in the past."""
    from app.services import backups

    real = backups.new_backup_id
    offset = [timedelta(0)]
    monkeypatch.setattr(backups, "new_backup_id", lambda now: real(now - offset[0]))

    def set_days(days: float) -> None:
        offset[0] = timedelta(days=days)
    return set_days


@pytest.fixture
def sqlite_deployment(tmp_path: Path) -> Iterator[Deployment]:
    """For behaviour that does not depend on the database: SQLite only, fast."""
    made = make_deployment(tmp_path, "sqlite", str(tmp_path / "openwa.db"))
    yield made
    with made.context():
        db.session.remove()
        db.engine.dispose()
