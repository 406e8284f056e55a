"""API keys cached per API process (issue 18), invalidated through Redis.

Two apps built by ``create_app`` on the same database and Redis stand for two API
processes: each has its own cache. Every test first makes B cache the key (a request that
succeeds), changes the key through A, and asserts that B's very next request sees the change,
so each fails if B answered from a cache that ignored it.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import text

from app import create_app
from app.extensions import db
from app.services import key_cache
from tests.conftest import auth, make_config

API = "/api"


def _key_id(client: FlaskClient, admin_key: str, name_or_raw: str) -> str:
    keys = client.get(f"{API}/auth/api-keys", headers=auth(admin_key)).get_json()
    return next(k["id"] for k in keys if name_or_raw.startswith(k["keyPrefix"]))


def _cached_on(client: FlaskClient, raw: str, path: str = "/sessions", **kw: Any) -> None:
    """B accepts the key (and, from here on, holds it in its cache)."""
    for _ in range(2):
        reply = client.get(f"{API}{path}", headers=auth(raw), **kw)
        assert reply.status_code == 200, reply.get_json()


def test_revoked_on_one_process_is_refused_by_the_other_at_once(client, other, admin_key, make_key):
    raw = make_key("operator")
    _cached_on(other, raw)
    key_id = _key_id(client, admin_key, raw)
    assert client.post(f"{API}/auth/api-keys/{key_id}/revoke", headers=auth(admin_key)).status_code == 200
    reply = other.get(f"{API}/sessions", headers=auth(raw))
    assert reply.status_code == 401
    assert "revoked" in reply.get_json()["message"]


def test_deleted_and_rotated_keys_are_refused_by_the_other_process(client, other, admin_key, make_key):
    deleted, rotated = make_key("operator"), make_key("operator")
    _cached_on(other, deleted)
    _cached_on(other, rotated)
    assert client.delete(f"{API}/auth/api-keys/{_key_id(client, admin_key, deleted)}",
                         headers=auth(admin_key)).status_code == 204
    fresh = client.post(f"{API}/auth/api-keys/{_key_id(client, admin_key, rotated)}/rotate",
                        headers=auth(admin_key)).get_json()["apiKey"]
    assert other.get(f"{API}/sessions", headers=auth(deleted)).status_code == 401
    assert other.get(f"{API}/sessions", headers=auth(rotated)).status_code == 401
    assert other.get(f"{API}/sessions", headers=auth(fresh)).status_code == 200


def test_role_change_holds_on_the_other_process_at_once(client, other, admin_key, make_key):
    raw = make_key("admin")
    _cached_on(other, raw, "/auth/api-keys")
    key_id = _key_id(client, admin_key, raw)
    assert client.put(f"{API}/auth/api-keys/{key_id}", json={"role": "viewer"},
                      headers=auth(admin_key)).status_code == 200
    reply = other.get(f"{API}/auth/api-keys", headers=auth(raw))
    assert reply.status_code == 403
    assert "admin role" in reply.get_json()["message"]


def test_allowed_ips_change_holds_on_the_other_process_at_once(client, other, admin_key, make_key):
    raw = make_key("operator")
    here = {"environ_base": {"REMOTE_ADDR": "203.0.113.7"}}
    _cached_on(other, raw, **here)
    key_id = _key_id(client, admin_key, raw)
    assert client.put(f"{API}/auth/api-keys/{key_id}", json={"allowedIps": ["198.51.100.0/24"]},
                      headers=auth(admin_key)).status_code == 200
    assert other.get(f"{API}/sessions", headers=auth(raw), **here).status_code == 403
    assert other.get(f"{API}/sessions", headers=auth(raw),
                     environ_base={"REMOTE_ADDR": "198.51.100.9"}).status_code == 200


def test_allowed_sessions_change_holds_on_the_other_process_at_once(client, other, admin_key, make_key):
    for name in ("alpha", "beta"):
        assert client.post(f"{API}/sessions", json={"name": name}, headers=auth(admin_key)).status_code == 201
    raw = make_key("operator")
    _cached_on(other, raw, "/sessions/beta")
    key_id = _key_id(client, admin_key, raw)
    assert client.put(f"{API}/auth/api-keys/{key_id}", json={"allowedSessions": ["alpha"]},
                      headers=auth(admin_key)).status_code == 200
    assert other.get(f"{API}/sessions/beta", headers=auth(raw)).status_code == 403
    assert other.get(f"{API}/sessions/alpha", headers=auth(raw)).status_code == 200
    listed = other.get(f"{API}/sessions", headers=auth(raw)).get_json()
    assert [s["name"] for s in listed] == ["alpha"]


def test_expiry_is_checked_on_every_request_from_the_cached_key(other, make_key):
    # No change is committed when a key expires: the cache must compare with the clock.
    expires = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    raw = make_key("operator", expires_at=expires)
    _cached_on(other, raw)
    time.sleep(max(0.0, (expires - datetime.now(timezone.utc)).total_seconds()) + 0.2)
    reply = other.get(f"{API}/sessions", headers=auth(raw))
    assert reply.status_code == 401
    assert "expired" in reply.get_json()["message"]


def test_a_refused_key_is_never_cached(client, other, admin_key, make_key):
    raw = make_key("operator")
    key_id = _key_id(client, admin_key, raw)
    assert client.post(f"{API}/auth/api-keys/{key_id}/revoke", headers=auth(admin_key)).status_code == 200
    for _ in range(3):
        assert other.get(f"{API}/sessions", headers=auth(raw)).status_code == 401
        assert other.get(f"{API}/sessions", headers=auth("owa_k1_" + "0" * 64)).status_code == 401
    cache = other.application.extensions[key_cache.EXTENSION]
    assert cache._entries == {}


def test_usage_is_still_counted_for_cached_keys(other, make_key, admin_key):
    raw = make_key("operator")
    for _ in range(7):
        assert other.get(f"{API}/sessions", headers=auth(raw)).status_code == 200
    # Reading the key on the same process flushes its usage meter first.
    key_id = _key_id(other, admin_key, raw)
    shown = other.get(f"{API}/auth/api-keys/{key_id}", headers=auth(admin_key)).get_json()
    assert shown["usageCount"] == 7
    assert shown["lastUsedAt"] is not None


def test_the_cache_answers_without_the_database_and_a_lost_signal_is_bounded(
        tmp_path, backend, redis_available, make_key):
    """A key row changed behind the API's back (no Redis signal) keeps its cached rights for
    at most AUTH_CACHE_SECONDS, and not a moment longer; a lost Redis means no cache."""
    config = make_config(tmp_path / "b", backend, redis_available, auth_cache_seconds=1.0)
    second = create_app(config)
    other = second.test_client()
    raw = make_key("operator")
    _cached_on(other, raw)
    with second.app_context():
        db.session.execute(text("UPDATE api_keys SET is_active = :no"), {"no": False})
        db.session.commit()  # Core statement: no ORM change, so no generation bump
    assert other.get(f"{API}/sessions", headers=auth(raw)).status_code == 200  # cached
    time.sleep(1.1)
    assert other.get(f"{API}/sessions", headers=auth(raw)).status_code == 401  # bounded
    with second.app_context():
        db.session.remove()
