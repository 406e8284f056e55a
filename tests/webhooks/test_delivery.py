"""Delivery: the envelope and headers of api.md, signatures, retries with backoff, dead
letters and redrive, order, no redirects, metrics. Driven in-process through the same
service the Celery task calls."""
from __future__ import annotations

import hashlib
import hmac
import re
import time

from prometheus_client import REGISTRY
from sqlalchemy import select

from app.extensions import db
from app.models import WebhookDelivery
from app.services import events, webhooks
from engines import EngineEvent, EventKind
from tests.conftest import auth

SECRET = "receiver-shared-secret"


def verify(secret: str, body: bytes, header: str) -> bool:
    """The README's recipe."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def hook(client, key, sid, url, **extra):
    body = {"url": url, "events": ["*"], "secret": SECRET, **extra}
    reply = client.post(f"/api/sessions/{sid}/webhooks", json=body, headers=auth(key))
    assert reply.status_code == 201, reply.get_json()
    return reply.get_json()["id"]


def incoming(app, sid, n, chat="15550001111@c.us"):
    with app.app_context():
        events.apply(sid, EngineEvent(EventKind.MESSAGE, {
            "id": f"false_{chat}_{n:06d}", "chatId": chat,
            "from": chat, "to": "15550002222@c.us", "fromMe": False, "type": "text",
            "body": f"hello {n}", "timestamp": 1700000000 + n}))


def drain(app, webhook_id):
    with app.app_context():
        return webhooks.drain(webhook_id)


def rows(app):
    with app.app_context():
        found = list(db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.seq)))
        db.session.expunge_all()
        return found


def test_an_incoming_message_is_delivered_signed_with_the_documented_envelope(wh_app, client, operator_key,
                                                                              session_id, receiver):
    webhook_id = hook(client, operator_key, session_id, receiver.url, headers={"X-Tenant": "acme"})
    incoming(wh_app, session_id, 1)
    assert drain(wh_app, webhook_id)["delivered"] == 1
    request = receiver.requests[0]
    body = receiver.bodies()[0]
    assert set(body) == {"event", "timestamp", "sessionId", "idempotencyKey", "deliveryId", "data"}
    assert body["event"] == "message.received" and body["sessionId"] == session_id
    assert body["data"]["body"] == "hello 1" and body["data"]["direction"] == "incoming"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", body["timestamp"])
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "OpenWA-Webhook/1.0"
    assert headers["x-openwa-event"] == "message.received"
    assert headers["x-openwa-delivery-id"] == body["deliveryId"]
    assert headers["x-openwa-idempotency-key"] == body["idempotencyKey"]
    assert headers["x-openwa-retry-count"] == "0"
    assert headers["x-tenant"] == "acme"
    assert verify(SECRET, request["body"], headers["x-openwa-signature"])
    assert not verify(SECRET, request["body"] + b" ", headers["x-openwa-signature"])


def test_retries_on_500_keep_ids_and_count_retries_then_deliver(
        wh_app, client, operator_key, session_id, receiver):
    webhook_id = hook(client, operator_key, session_id, receiver.url)
    receiver.fail_first = 2
    incoming(wh_app, session_id, 1)
    for _ in range(3):
        drain(wh_app, webhook_id)
        time.sleep(0.3)  # past the backoff (WEBHOOK_RETRY_DELAY 50 ms, doubling)
    heads = [{k.lower(): v for k, v in r["headers"].items()} for r in receiver.requests]
    assert [h["x-openwa-retry-count"] for h in heads] == ["0", "1", "2"]
    assert len({h["x-openwa-delivery-id"] for h in heads}) == 1
    assert len({h["x-openwa-idempotency-key"] for h in heads}) == 1
    assert rows(wh_app)[0].status == "delivered"


def test_timeouts_and_refused_connections_are_retried(wh_app, client, operator_key, session_id, receiver):
    wh_app.config["OPENWA"].webhook_timeout_ms = 300
    webhook_id = hook(client, operator_key, session_id, receiver.url)
    receiver.mode, receiver.hang_seconds = "hang", 1.0
    incoming(wh_app, session_id, 1)
    drain(wh_app, webhook_id)
    assert rows(wh_app)[0].last_error.startswith("timed out")
    receiver.stop()
    time.sleep(0.2)
    drain(wh_app, webhook_id)
    assert rows(wh_app)[0].last_error == "ConnectionError" and rows(wh_app)[0].attempts == 2
    receiver.mode = "ok"
    receiver.start()
    time.sleep(0.5)
    drain(wh_app, webhook_id)
    assert rows(wh_app)[0].status == "delivered"


def test_redirects_are_not_followed(wh_app, client, operator_key, session_id, receiver):
    webhook_id = hook(client, operator_key, session_id, receiver.url)
    receiver.mode = "redirect"
    incoming(wh_app, session_id, 1)
    drain(wh_app, webhook_id)
    assert len(receiver.requests) == 1 and rows(wh_app)[0].last_status_code == 302
    assert rows(wh_app)[0].status == "pending"


def test_dead_letter_after_the_last_attempt_then_redrive(
        wh_app, client, operator_key, admin_key, session_id, receiver):
    webhook_id = hook(client, operator_key, session_id, receiver.url, retryCount=1)
    receiver.mode = "fail"
    incoming(wh_app, session_id, 1)
    drain(wh_app, webhook_id)
    time.sleep(0.2)
    drain(wh_app, webhook_id)
    assert rows(wh_app)[0].status == "dead" and len(receiver.requests) == 2
    assert client.get("/api/webhooks/delivery-failures", headers=auth(operator_key)).status_code == 403
    dead = client.get("/api/webhooks/delivery-failures", headers=auth(admin_key)).get_json()
    assert [d["id"] for d in dead] == [rows(wh_app)[0].id] and dead[0]["attempts"] == 2
    receiver.mode = "ok"
    redriven = client.post(f"/api/webhooks/delivery-failures/{dead[0]['id']}/redrive", headers=auth(admin_key))
    assert redriven.status_code == 200 and redriven.get_json()["status"] == "pending"
    drain(wh_app, webhook_id)
    assert rows(wh_app)[0].status == "delivered"
    assert receiver.bodies()[-1]["deliveryId"] == dead[0]["id"]
    assert client.get("/api/webhooks/delivery-failures", headers=auth(admin_key)).get_json() == []


def test_a_later_event_never_overtakes_an_earlier_one_being_retried(
        wh_app, client, operator_key, session_id, receiver):
    webhook_id = hook(client, operator_key, session_id, receiver.url, events=["message.received"])
    receiver.fail_first = 1
    for n in range(1, 4):
        incoming(wh_app, session_id, n)
    drain(wh_app, webhook_id)  # the first fails: nothing after it may go
    assert [b["data"]["body"] for b in receiver.bodies()] == ["hello 1"]
    time.sleep(0.2)
    drain(wh_app, webhook_id)
    assert [b["data"]["body"] for b in receiver.bodies()] == ["hello 1", "hello 1", "hello 2", "hello 3"]


def test_an_event_stored_while_a_drain_posts_its_chat_is_delivered_by_that_drain(
        wh_app, client, operator_key, session_id, receiver):
    """While the drain posts event 1, event 2 of the same chat is stored (its own kick goes
    to a broker nobody reads here): the drain takes the chat's next event after the success,
    or it would wait for the sweep (WEBHOOK_SWEEP_INTERVAL)."""
    webhook_id = hook(client, operator_key, session_id, receiver.url, events=["message.received"])

    def meanwhile(body):
        if body["data"]["body"] == "hello 1":
            incoming(wh_app, session_id, 2)  # its own connection, as the API has

    receiver.on_request = meanwhile
    incoming(wh_app, session_id, 1)
    result = drain(wh_app, webhook_id)
    assert [b["data"]["body"] for b in receiver.bodies()] == ["hello 1", "hello 2"]
    assert result == {"delivered": 2, "retried": 0, "dead": 0}


def test_only_matching_active_webhooks_get_an_event(wh_app, client, operator_key, session_id, receiver):
    acks_only = hook(client, operator_key, session_id, receiver.url, events=["message.ack"])
    incoming(wh_app, session_id, 1)
    assert drain(wh_app, acks_only)["delivered"] == 0 and rows(wh_app) == []


def test_deliveries_are_counted_in_metrics(wh_app, client, operator_key, session_id, receiver):
    def count(status):
        return REGISTRY.get_sample_value("webhook_deliveries_total",
                                         {"event": "message.received", "status": status}) or 0

    before = {s: count(s) for s in ("success", "retry")}
    webhook_id = hook(client, operator_key, session_id, receiver.url)
    receiver.fail_first = 1
    incoming(wh_app, session_id, 1)
    drain(wh_app, webhook_id)
    time.sleep(0.2)
    drain(wh_app, webhook_id)
    assert count("retry") - before["retry"] == 1 and count("success") - before["success"] == 1


def test_the_environments_proxy_is_still_used_and_netrc_is_not(
        wh_app, client, operator_key, session_id, receiver, monkeypatch, tmp_path):
    """Connections are kept per thread and the environment is read once per URL: HTTP_PROXY
    still applies (here a second local receiver plays the proxy); ~/.netrc credentials are
    never added to a webhook request."""
    from tests.webhooks.receiver import Receiver

    proxy = Receiver().start()
    try:
        (tmp_path / ".netrc").write_text("machine 127.0.0.1 login leak password secret\n")
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
        monkeypatch.setenv("HTTP_PROXY", proxy.url.rsplit("/", 1)[0])
        for name in ("NO_PROXY", "no_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        webhook_id = hook(client, operator_key, session_id, receiver.url)
        incoming(wh_app, session_id, 1)
        assert drain(wh_app, webhook_id)["delivered"] == 1
        assert receiver.requests == [] and len(proxy.requests) == 1
        assert proxy.requests[0]["path"] == receiver.url  # the absolute URI a proxy gets
        assert "authorization" not in {k.lower() for k in proxy.requests[0]["headers"]}
    finally:
        proxy.stop()
