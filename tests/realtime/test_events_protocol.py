"""/events over a real gunicorn API: subscribe, scope refusal, rate limit, and events that a
session host (another process) commits reaching the clients."""
from __future__ import annotations

import pytest
import socketio

from tests.integration.conftest import wait_for
from tests.live import LivePlatform
from tests.realtime.conftest import EventsClient, start_host

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _key(live: LivePlatform, **body: object) -> str:
    reply = live.call("POST", "/auth/api-keys", json={"name": "k", **body})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["apiKey"])


def test_host_events_reach_subscribers_of_every_api_process_filtered_by_subscription(
        live_stack: LivePlatform, root_url: str) -> None:
    live = live_stack
    live.start_api(API_WORKERS="2")
    start_host(live, "host-events@test")
    assert live.call("POST", "/sessions", json={"name": "live1"}).status_code == 201
    session_id = live.status("live1")["id"]
    # Several connections: with two gunicorn workers they land on both processes.
    everything = [EventsClient(root_url, live.key) for _ in range(4)]
    only_qr = EventsClient(root_url, live.key)
    try:
        for client in everything:
            reply = client.reply(client.send({"type": "subscribe", "sessionId": "*", "events": ["*"]}))
            assert reply == {"type": "subscribed", "requestId": reply["requestId"], "sessionId": "*",
                             "events": ["*"]}
        reply = only_qr.reply(only_qr.send({"type": "subscribe", "sessionId": "live1",
                                            "events": ["session.qr"]}))
        assert reply["type"] == "subscribed" and reply["sessionId"] == session_id

        assert live.call("POST", "/sessions/live1/start").status_code == 200
        for client in everything + [only_qr]:
            frame = client.event("session.qr")
            assert frame["payload"]["sessionId"] == session_id
            assert frame["payload"]["data"]["qr"]
            assert frame["timestamp"].endswith("Z")
        assert live.call("POST", "/sessions/live1/mock/scan").status_code == 200
        for client in everything:
            client.event("session.status", status="ready")
        # The QR-only subscriber never sees a status event.
        statuses = [f for f in list(only_qr.frames.queue)
                    if f.get("type") == "event" and f["payload"]["event"] != "session.qr"]
        assert statuses == []

        reply = only_qr.reply(only_qr.send({"type": "unsubscribe", "sessionId": "live1",
                                            "events": ["session.qr"]}))
        assert reply["type"] == "unsubscribed"
        ping = only_qr.reply(only_qr.send({"type": "ping"}))
        assert ping["type"] == "pong"
    finally:
        for client in everything + [only_qr]:
            client.close()


def test_keys_are_checked_and_scopes_refused(live_stack: LivePlatform, root_url: str) -> None:
    live = live_stack
    live.start_api()
    for name in ("mine", "theirs"):
        assert live.call("POST", "/sessions", json={"name": name}).status_code == 201

    with pytest.raises(socketio.exceptions.ConnectionError):
        EventsClient(root_url, "owa_k1_" + "0" * 64)
    with pytest.raises(socketio.exceptions.ConnectionError):
        EventsClient(root_url, None)

    scoped = EventsClient(root_url, _key(live, role="viewer", allowedSessions=["mine"]))
    by_header = EventsClient(root_url, None, headers={"X-API-Key": live.key})
    try:
        refused = scoped.reply(scoped.send({"type": "subscribe", "sessionId": "*"}))
        assert refused["type"] == "error"
        assert refused["error"]["statusCode"] == 403 and refused["error"]["code"] == "SCOPE_REFUSED"
        refused = scoped.reply(scoped.send({"type": "subscribe", "sessionId": "theirs"}))
        assert refused["error"]["statusCode"] == 403
        allowed = scoped.reply(scoped.send({"type": "subscribe", "sessionId": "mine",
                                            "events": ["message.received"]}))
        assert allowed["type"] == "subscribed"
        bad = scoped.reply(scoped.send({"type": "subscribe", "sessionId": "mine", "events": ["nope"]}))
        assert bad["error"]["code"] == "INVALID_FRAME"
        assert by_header.reply(by_header.send({"type": "ping"}))["type"] == "pong"
    finally:
        scoped.close()
        by_header.close()


@pytest.mark.parametrize("live_stack", [{"EVENTS_RATE_LIMIT": "5"}], indirect=True)
def test_frames_beyond_the_rate_limit_are_refused(live_stack: LivePlatform, root_url: str) -> None:
    live = live_stack
    live.start_api()
    client = EventsClient(root_url, live.key)
    try:
        answers = [client.reply(client.send({"type": "ping"})) for _ in range(6)]
        assert [a["type"] for a in answers[:5]] == ["pong"] * 5
        assert answers[5]["type"] == "error" and answers[5]["error"]["code"] == "RATE_LIMITED"
    finally:
        client.close()


def test_a_revoked_key_is_dropped_at_its_next_frame(live_stack: LivePlatform, root_url: str) -> None:
    live = live_stack
    live.start_api()
    reply = live.call("POST", "/auth/api-keys", json={"name": "short", "role": "viewer"}).json()
    client = EventsClient(root_url, reply["apiKey"])
    try:
        assert live.call("POST", f"/auth/api-keys/{reply['id']}/revoke").status_code in (200, 201)
        answer = client.reply(client.send({"type": "subscribe", "sessionId": "*"}))
        assert answer["error"]["statusCode"] == 401
    finally:
        client.close()


@pytest.mark.parametrize("live_stack", [{"API_THREADS": "4"}], indirect=True)
def test_a_process_keeps_threads_for_rest_by_capping_its_clients(live_stack: LivePlatform, root_url: str) -> None:
    live = live_stack
    live.start_api()
    held = [EventsClient(root_url, live.key) for _ in range(2)]  # half of API_THREADS
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            EventsClient(root_url, live.key)
        assert live.call("GET", "/sessions").status_code == 200
        assert live.call("GET", "/infra/status").json()["events"] == {"clients": 2, "maxClients": 2}
    finally:
        for client in held:
            client.close()
    # A closed connection frees its place.
    wait_for(lambda: live.call("GET", "/infra/status").json()["events"]["clients"] == 0, 10, 0.1,
             "the connections to close")
    EventsClient(root_url, live.key).close()


def test_a_chat_scoped_key_cannot_subscribe(live_stack: LivePlatform, root_url: str) -> None:
    """allowedChats (issue 13.7): live events are not filtered per chat, so they are refused."""
    live = live_stack
    live.start_api()
    assert live.call("POST", "/sessions", json={"name": "chatty"}).status_code == 201
    client = EventsClient(root_url, _key(live, role="viewer", allowedChats=["15551234567"]))
    try:
        refused = client.reply(client.send({"type": "subscribe", "sessionId": "chatty"}))
        assert refused["type"] == "error"
        assert refused["error"]["statusCode"] == 403 and refused["error"]["code"] == "SCOPE_REFUSED"
        assert client.reply(client.send({"type": "ping"}))["type"] == "pong"
    finally:
        client.close()
