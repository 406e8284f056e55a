"""The session a send names, cached per API process (issue 18), invalidated through Redis.

Two apps built by ``create_app`` on the same database and Redis stand for an API process (B,
whose sends fill its cache) and whatever else changes the session (A: the API's own routes,
or a session host's status changes run in A's app context). Each test first has B answer a
send from its cache, changes the session elsewhere, and asserts that B's very next send sees
the change, so each fails if B answered from a copy that ignored it.
"""
from __future__ import annotations

import time

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from app import create_app
from app.extensions import db
from app.models import SessionStatus
from app.services import events, hosts, key_cache, session_cache
from tests.conftest import auth, make_config
from tests.factories import assert_error, make_session, record_selects

CHAT = "6281234567890@c.us"


@pytest.fixture
def ready(app: Flask):
    return make_session(app, status="ready", desired_state="running", phone="6289999999999")


def _send(client: FlaskClient, key: str, sid: str, text_: str = "hi") -> int:
    reply = client.post(f"/api/sessions/{sid}/messages/send-text",
                        json={"chatId": CHAT, "text": text_}, headers=auth(key))
    return reply.status_code


def test_a_cached_send_reads_no_session_row_and_sends_as_before(other, operator_key, ready):
    seen, stop = record_selects(other.application, "sessions")
    try:
        assert _send(other, operator_key, ready.name) == 202  # read, then cached
        first = len(seen)
        assert _send(other, operator_key, ready.name, "again") == 202
        assert _send(other, operator_key, ready.id, "by id") == 202  # its own entry: one read
    finally:
        stop()
    assert first == 1 and len(seen) == 2, seen


def test_a_status_change_by_a_session_host_holds_at_the_next_send(app, other, operator_key, ready):
    assert _send(other, operator_key, ready.id) == 202
    with app.app_context():  # the session host's path: a Core UPDATE through the ORM session
        events.set_status(ready.id, SessionStatus.DISCONNECTED)
    assert_error(other.post(f"/api/sessions/{ready.id}/messages/send-text",
                            json={"chatId": CHAT, "text": "now?"}, headers=auth(operator_key)),
                 409, "SESSION_NOT_READY")
    with app.app_context():
        events.set_status(ready.id, SessionStatus.READY)
    assert _send(other, operator_key, ready.id) == 202


def test_a_session_deleted_or_stopped_through_the_api_holds_at_the_next_send(
        app, client, other, operator_key, admin_key):
    kept = make_session(app, status="ready", desired_state="running")
    gone = make_session(app, status="ready", desired_state="running")
    assert _send(other, operator_key, kept.name) == 202
    assert _send(other, operator_key, gone.name) == 202
    assert client.delete(f"/api/sessions/{gone.id}", headers=auth(admin_key)).status_code in (200, 204)
    assert_error(other.post(f"/api/sessions/{gone.name}/messages/send-text",
                            json={"chatId": CHAT, "text": "x"}, headers=auth(operator_key)),
                 404)
    assert client.post(f"/api/sessions/{kept.id}/stop", headers=auth(admin_key)).status_code < 300
    with app.app_context():  # what the host does when it stops it
        events.set_status(kept.id, SessionStatus.DISCONNECTED)
    assert _send(other, operator_key, kept.name) == 409


def test_leases_and_touches_announce_nothing_and_a_status_change_does(app, ready):
    def current() -> object:
        with app.app_context():
            return key_cache.generation(key_cache.SESSIONS_GENERATION_KEY)

    before = current()
    with app.app_context():
        token = hosts.claim(ready.id, "host-a", 30)
        assert token is not None
        assert hosts.renew({ready.id: token}, "host-a", 30) == set()
        hosts.release(ready.id, "host-a", token)
        db.session.execute(events._TOUCH, {"in_session": ready.id, "active_at": None})
        db.session.commit()
    assert current() == before
    with app.app_context():
        events.set_status(ready.id, SessionStatus.DISCONNECTED)
    assert current() != before


def test_a_change_the_signal_misses_holds_at_most_session_cache_seconds(
        tmp_path, backend, redis_available, operator_key, ready, app, monkeypatch):
    """A row changed behind the platform's back (raw SQL: no ORM statement, no signal) keeps
    its cached status for at most SESSION_CACHE_SECONDS, and not a moment longer."""
    second = create_app(make_config(tmp_path / "b", backend, redis_available,
                                    session_cache_seconds=3.0))
    second.config["TESTING"] = True
    other = second.test_client()
    # Timed from the moment the row is cached, not from before the request (on a loaded
    # machine the request's own work before its look-up ate the margin).
    put_at: list[float] = []
    real_put = session_cache.SessionCache.put

    def timed_put(cache, *args, **kwargs):
        put_at.append(time.monotonic())
        return real_put(cache, *args, **kwargs)
    monkeypatch.setattr(session_cache.SessionCache, "put", timed_put)
    assert _send(other, operator_key, ready.id) == 202  # about a second (SEND_WAIT_TIMEOUT)
    [cached_at] = put_at
    with second.app_context():
        db.session.execute(text("UPDATE sessions SET status = 'disconnected' WHERE id = :sid"),
                           {"sid": ready.id})
        db.session.commit()
    assert time.monotonic() - cached_at < 2.5
    assert _send(other, operator_key, ready.id) == 202  # still the cached copy
    time.sleep(max(0.0, 3.05 - (time.monotonic() - cached_at)))
    assert _send(other, operator_key, ready.id) == 409  # bounded
    with second.app_context():
        db.session.remove()


def test_no_cache_with_session_cache_seconds_zero(tmp_path, backend, redis_available,
                                                  operator_key, ready):
    second = create_app(make_config(tmp_path / "b", backend, redis_available,
                                    session_cache_seconds=0.0))
    second.config["TESTING"] = True
    other = second.test_client()
    seen, stop = record_selects(second, "sessions")
    try:
        assert _send(other, operator_key, ready.id) == 202
        assert _send(other, operator_key, ready.id) == 202
    finally:
        stop()
    assert len(seen) == 2
    with second.app_context():
        db.session.remove()
