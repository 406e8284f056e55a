"""Live events are published once the transaction that reports them commits, never for a
rolled-back one; the dashboard page carries its own CSP and serves Swagger UI's files."""
from __future__ import annotations

import json
import time

import redis as redis_lib

from app import live
from app.embedded_redis import free_port
from app.extensions import db
from app.live import channel_for, publish
from app.services import webhooks
from tests.factories import make_session


def _listen(url: str) -> redis_lib.client.PubSub:
    pubsub = redis_lib.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel_for(url))
    pubsub.get_message(timeout=1)
    return pubsub


def _published(pubsub: redis_lib.client.PubSub, session_id: str, wait: float = 1.0) -> list[dict]:
    """What was published about ``session_id``: Redis pub/sub ignores the database number,
    so another test run on this Redis (a concurrent process of `make test`) may publish too."""
    found, deadline = [], time.monotonic() + wait
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
        if message:
            frame = json.loads(message["data"])
            if any(str(room).startswith(f"{session_id}|") for room in frame.get("room") or []):
                found.append(frame)
    return found


def test_events_go_out_after_commit_and_never_after_rollback(app, config):
    session = make_session(app)
    pubsub = _listen(config.redis_url)
    with app.app_context():
        webhooks.emit(session.id, "session.status", {"status": "ready"})
        assert _published(pubsub, session.id, 0.3) == []  # not before the commit
        db.session.commit()
        sent = _published(pubsub, session.id)
        webhooks.emit(session.id, "session.status", {"status": "failed"})
        db.session.rollback()
        db.session.commit()
        assert _published(pubsub, session.id, 0.5) == []
    assert len(sent) == 1
    frame = sent[0]["data"][0]
    assert frame["type"] == "event" and frame["payload"] == {
        "event": "session.status", "sessionId": session.id, "data": {"status": "ready"}}
    assert sent[0]["namespace"] == "/events"
    assert set(sent[0]["room"]) == {f"{session.id}|session.status", f"{session.id}|*",
                                    "*|session.status", "*|*"}


def test_the_dashboard_page_has_a_strict_csp_and_no_key(client):
    for path in ("/", "/dashboard"):
        reply = client.get(path)
        assert reply.status_code == 200 and b'id="login-form"' in reply.data
        policy = reply.headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "default-src 'none'" in policy
        assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
        assert reply.headers["Cache-Control"] == "no-store"
        assert b"<script>" not in reply.data  # no inline script to allow
    script = client.get("/dashboard/static/dashboard.js")
    assert script.status_code == 200 and "innerHTML" not in script.get_data(as_text=True)


def test_swagger_ui_files_are_served_locally(client):
    html = client.get("/api/docs").get_data(as_text=True)
    assert "cdn" not in html.lower() and "/api/docs/assets/swagger-ui-bundle.js" in html
    bundle = client.get("/api/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.data) > 500_000
    assert client.get("/api/docs/assets/swagger-ui.css").status_code == 200
    assert client.get("/api/docs/assets/../../app/config.py").status_code == 404
    assert client.get("/api/docs/assets/LICENSE").status_code == 404


def test_events_of_a_closed_uncommitted_transaction_are_forgotten(app, config):
    session = make_session(app)
    pubsub = _listen(config.redis_url)
    with app.app_context():
        webhooks.emit(session.id, "session.status", {"status": "ready"})
        db.session.close()
        db.session.commit()
    assert _published(pubsub, session.id, 0.5) == []


def test_a_redis_outage_drops_live_frames_without_failing_the_caller():
    started = time.monotonic()
    publish(f"redis://127.0.0.1:{free_port()}/0", [("s", "session.status", {"status": "ready"})])
    assert time.monotonic() - started < 5


def test_deployments_on_other_database_numbers_of_one_redis_never_see_each_others_events(
        app, config):
    """Pub/sub ignores the database number: the channel carries it instead."""
    session = make_session(app)
    base, _, database = config.redis_url.rpartition("/")
    neighbour = f"{base}/{(int(database) + 1) % 16}"
    assert channel_for(neighbour) != channel_for(config.redis_url)
    ours, theirs = _listen(config.redis_url), _listen(neighbour)
    publish(neighbour, [(session.id, "session.status", {"status": "ready"})])
    assert _published(theirs, session.id) != []
    assert _published(ours, session.id, 0.5) == []


def _burst(session_id: str, count: int) -> list[tuple[str, str, dict]]:
    return [(session_id, "message.ack", {"id": f"m{number}", "ack": 3}) for number in range(count)]


def test_a_burst_of_events_goes_out_in_order_in_one_round_trip(config, monkeypatch):
    session_id = "burst-session"
    pubsub = _listen(config.redis_url)
    publish(config.redis_url, [(session_id, "session.status", {"status": "ready"})])  # connects
    assert len(_published(pubsub, session_id)) == 1
    writes = []
    send = redis_lib.connection.AbstractConnection.send_packed_command

    def counted(connection, command, check_health=True):
        writes.append(connection)
        return send(connection, command, check_health)

    monkeypatch.setattr(redis_lib.connection.AbstractConnection, "send_packed_command", counted)
    publish(config.redis_url, _burst(session_id, 25))
    monkeypatch.undo()
    # A burst of acks (a host's tick) is one write to Redis, not one per frame.
    assert len(writes) == 1
    frames = _published(pubsub, session_id)
    assert [frame["data"][0]["payload"]["data"]["id"] for frame in frames] == [
        f"m{number}" for number in range(25)]
    assert all(frame["method"] == "emit" and frame["event"] == "message"
               and frame["namespace"] == "/events" for frame in frames)


def test_a_burst_is_sent_again_on_a_new_connection_when_redis_dropped_the_old_one(config):
    session_id = "dropped-session"
    pubsub = _listen(config.redis_url)
    publish(config.redis_url, [(session_id, "session.status", {"status": "ready"})])
    assert len(_published(pubsub, session_id)) == 1
    manager = live._publisher.manager(config.redis_url)
    redis_lib.Redis.from_url(config.redis_url).client_kill_filter(_id=manager.redis.client_id())
    publish(config.redis_url, _burst(session_id, 3))
    assert [frame["data"][0]["payload"]["data"]["id"] for frame in _published(pubsub, session_id)] == [
        "m0", "m1", "m2"]


def test_a_burst_whose_write_fails_is_published_once_on_the_second_try(config, monkeypatch):
    session_id = "retried-session"
    pubsub = _listen(config.redis_url)
    execute = redis_lib.client.Pipeline.execute
    failures = []

    def fails_once(pipeline, *args, **kwargs):
        if not failures:  # Redis went away in the middle of the write
            failures.append(pipeline)
            raise redis_lib.exceptions.ConnectionError("connection reset by peer")
        return execute(pipeline, *args, **kwargs)

    monkeypatch.setattr(redis_lib.client.Pipeline, "execute", fails_once)
    publish(config.redis_url, _burst(session_id, 3))
    assert len(failures) == 1
    assert [frame["data"][0]["payload"]["data"]["id"] for frame in _published(pubsub, session_id)] == [
        "m0", "m1", "m2"]
