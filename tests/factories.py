"""Builders shared by the tests: rows written straight to the database, and error checks.

The API tests run without any session host, so a session is put into a state by writing
its row, never by driving an engine.
"""
from __future__ import annotations

import itertools
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable

from flask import Flask
from sqlalchemy import event as sa_event
from werkzeug.test import TestResponse

from app.extensions import db
from app.models import Message, Session
from engines import EngineState, SentMessage
from engines.mock import MockEngine, MockOptions

_seq = itertools.count(1)

ERROR_KEYS = {"statusCode", "message", "error"}


def unique_name(prefix: str = "sess") -> str:
    return f"{prefix}-{next(_seq)}"


def make_session(app: Flask, name: str | None = None, **fields: Any) -> Session:
    """Insert a session row with ``fields`` (model attribute names); return it detached."""
    with app.app_context():
        session = Session(name=name or unique_name(), **fields)
        db.session.add(session)
        db.session.commit()
        db.session.refresh(session)
        db.session.expunge(session)
        return session


def update_session(app: Flask, session_id: str, **fields: Any) -> None:
    with app.app_context():
        session = db.session.get(Session, session_id)
        assert session is not None
        for name, value in fields.items():
            setattr(session, name, value)
        db.session.commit()


def load_session(app: Flask, session_id: str) -> Session | None:
    with app.app_context():
        session = db.session.get(Session, session_id)
        if session is not None:
            db.session.expunge(session)
        return session


def make_message(app: Flask, session_id: str, **fields: Any) -> Message:
    """Insert a message row; defaults make an incoming text from 6281111111111@c.us."""
    number = next(_seq)
    values: dict[str, Any] = {
        "id": f"3EB0TEST{number:012d}",
        "session_id": session_id,
        "wa_message_id": f"false_6281111111111@c.us_{number:016X}",
        "chat_id": "6281111111111@c.us",
        "sender": "6281111111111@c.us",
        "recipient": None,
        "from_me": False,
        "type": "text",
        "body": f"message {number}",
        "status": "delivered",
        "timestamp": int(time.time()),
    }
    values.update(fields)
    with app.app_context():
        message = Message(**values)
        db.session.add(message)
        db.session.commit()
        db.session.refresh(message)
        db.session.expunge(message)
        return message


def messages_of(app: Flask, session_id: str) -> list[Message]:
    with app.app_context():
        rows = list(db.session.scalars(
            db.select(Message).where(Message.session_id == session_id).order_by(Message.seq)))
        for row in rows:
            db.session.expunge(row)
        return rows


def assert_error(response: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """The body is exactly the OpenWA error shape for ``status`` (and ``code`` if given)."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert isinstance(body, dict)
    if code:
        assert set(body) == ERROR_KEYS | {"code"}, body
    else:
        assert ERROR_KEYS <= set(body) <= ERROR_KEYS | {"code"}, body
    assert body["statusCode"] == status
    assert body["error"] == HTTPStatus(status).phrase
    assert isinstance(body["message"], (str, list)) and body["message"]
    if code:
        assert body["code"] == code
    return body


def assert_validation_error(response: TestResponse, *fields: str) -> list[str]:
    """400 with ``message`` a list of ``field: message`` lines naming each of ``fields``."""
    body = assert_error(response, 400)
    assert body["error"] == "Bad Request"
    messages = body["message"]
    assert isinstance(messages, list) and messages, body
    assert all(isinstance(line, str) for line in messages)
    for field in fields:
        assert any(line.startswith(f"{field}:") or field in line for line in messages), messages
    return messages


class CountingEngine(MockEngine):
    """The mock engine, counting what it was asked to send and to react."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sends: list[str] = []
        self.reacted: list[tuple[str, str]] = []

    def send_text(self, chat_id: str, text: str, **kwargs: Any) -> SentMessage:
        self.sends.append(kwargs["message_id"])
        return super().send_text(chat_id, text, **kwargs)

    def react(self, chat_id: str, wa_message_id: str, emoji: str) -> None:
        super().react(chat_id, wa_message_id, emoji)
        self.reacted.append((wa_message_id, emoji))


def ready_engine(profile_dir: Path, engine_class: type[MockEngine] = CountingEngine) -> Any:
    """A mock engine of ``engine_class``, started and linked (READY)."""
    engine = engine_class("s1", profile_dir, MockOptions())
    engine.start()
    engine.simulate_scan()
    engine.poll()
    assert engine.state is EngineState.READY
    return engine


def record_selects(app: Flask, table: str) -> tuple[list[str], Callable[[], None]]:
    """Record every SELECT that reads ``table`` through ``app``'s engine from now on; the
    second item stops recording."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement:
            seen.append(statement)

    with app.app_context():
        engine = db.engine
    sa_event.listen(engine, "before_cursor_execute", record)
    return seen, lambda: sa_event.remove(engine, "before_cursor_execute", record)
