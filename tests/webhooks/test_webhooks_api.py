"""Webhook routes: CRUD, validation, write-only secrets, the SSRF guard, dead letters."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Webhook
from tests.conftest import auth
from tests.factories import assert_error

SECRET = "a-very-secret-value-42"


def create(client, key, sid, **body):
    return client.post(f"/api/sessions/{sid}/webhooks", json=body, headers=auth(key))


def test_create_list_get_update_delete(client, operator_key, session_id, receiver):
    made = create(client, operator_key, session_id, url=receiver.url, events=["message.received"],
                  secret=SECRET, headers={"X-Tenant": "t1"}, retryCount=5)
    assert made.status_code == 201, made.get_json()
    hook = made.get_json()
    assert hook["events"] == ["message.received"] and hook["retryCount"] == 5 and hook["active"]
    assert hook["hasSecret"] is True
    assert "secret" not in hook and "headers" not in hook
    listed = client.get(f"/api/sessions/{session_id}/webhooks", headers=auth(operator_key)).get_json()
    assert [h["id"] for h in listed] == [hook["id"]]
    assert [h["id"] for h in client.get("/api/webhooks", headers=auth(operator_key)).get_json()] == [hook["id"]]
    changed = client.put(f"/api/sessions/{session_id}/webhooks/{hook['id']}",
                         json={"active": False, "events": ["*"]}, headers=auth(operator_key))
    assert changed.status_code == 200 and changed.get_json()["active"] is False
    assert changed.get_json()["events"] == ["*"] and changed.get_json()["url"] == receiver.url
    gone = client.delete(f"/api/sessions/{session_id}/webhooks/{hook['id']}", headers=auth(operator_key))
    assert gone.status_code == 204
    missing = client.get(f"/api/sessions/{session_id}/webhooks/{hook['id']}", headers=auth(operator_key))
    assert_error(missing, 404)


def test_events_default_to_message_received(client, operator_key, session_id, receiver):
    assert create(client, operator_key, session_id, url=receiver.url).get_json()["events"] == ["message.received"]


@pytest.mark.parametrize("body, field", [
    ({"url": "ftp://example.com/x"}, "url"),
    ({"url": "http://example.com/x", "secret": "short"}, "secret"),
    ({"url": "http://example.com/x", "events": ["message.bogus"]}, "events"),
    ({"url": "http://example.com/x", "headers": {"X-OpenWA-Signature": "forged"}}, "headers"),
    ({"url": "http://example.com/x", "retryCount": 99}, "retryCount"),
    ({"url": "http://example.com/x", "unknown": 1}, "unknown"),
])
def test_bad_webhooks_are_400(client, operator_key, session_id, body, field):
    reply = create(client, operator_key, session_id, **body)
    assert_error(reply, 400)
    assert any(field in line for line in reply.get_json()["message"])


def test_a_session_has_at_most_16_webhooks(client, operator_key, session_id, receiver):
    for _ in range(16):
        assert create(client, operator_key, session_id, url=receiver.url).status_code == 201
    assert_error(create(client, operator_key, session_id, url=receiver.url), 409)


def test_viewers_cannot_manage_webhooks(client, viewer_key, session_id, receiver):
    assert_error(create(client, viewer_key, session_id, url=receiver.url), 403)


def test_secrets_and_headers_are_encrypted_at_rest(wh_app, client, operator_key, session_id, receiver):
    create(client, operator_key, session_id, url=receiver.url, secret=SECRET, headers={"X-Token": "hdr-secret"})
    with wh_app.app_context():
        row = db.session.scalar(select(Webhook))
        assert SECRET not in row.secret_enc and row.secret_enc.startswith("v1:")
        assert "hdr-secret" not in row.headers_enc


@pytest.mark.parametrize("url", [
    "http://localhost:9/x", "http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://192.168.0.1/x",
    "http://169.254.169.254/latest/meta-data", "http://[::1]:9/x", "http://metadata.google.internal/x",
    "http://0.0.0.0:9/x",
])
def test_the_ssrf_guard_refuses_internal_targets(wh_app, client, operator_key, session_id, url):
    wh_app.config["OPENWA"].webhook_allow_private = False
    reply = create(client, operator_key, session_id, url=url)
    assert_error(reply, 400)
    assert any("url:" in line for line in reply.get_json()["message"])


def test_urls_with_credentials_are_refused_even_when_private_is_allowed(client, operator_key, session_id):
    reply = create(client, operator_key, session_id, url="http://user:pw@127.0.0.1:9/x")
    assert_error(reply, 400)


def test_test_route_posts_event_test_now(client, operator_key, session_id, receiver):
    hook = create(client, operator_key, session_id, url=receiver.url, secret=SECRET).get_json()
    reply = client.post(f"/api/sessions/{session_id}/webhooks/{hook['id']}/test", headers=auth(operator_key))
    assert reply.get_json() == {"success": True, "statusCode": 204}
    assert receiver.bodies()[0]["event"] == "test"
    receiver.mode = "fail"
    failed = client.post(f"/api/sessions/{session_id}/webhooks/{hook['id']}/test",
                         headers=auth(operator_key)).get_json()
    assert failed["success"] is False and failed["statusCode"] == 500


def test_secrets_never_appear_in_any_response(client, operator_key, session_id, receiver):
    hook = create(client, operator_key, session_id, url=receiver.url, secret=SECRET,
                  headers={"X-Token": "hdr-secret"}).get_json()
    bodies = [json.dumps(hook)]
    for path in (f"/api/sessions/{session_id}/webhooks", f"/api/sessions/{session_id}/webhooks/{hook['id']}",
                 "/api/webhooks"):
        bodies.append(client.get(path, headers=auth(operator_key)).get_data(as_text=True))
    assert not any(SECRET in b or "hdr-secret" in b for b in bodies)


# -- media (issue 12.4) ----------------------------------------------------------------------
def test_inline_media_is_off_by_default_shown_everywhere_and_changed_by_put(
        client, operator_key, session_id, receiver):
    hook = create(client, operator_key, session_id, url=receiver.url).get_json()
    assert hook["inlineMedia"] is False
    on = create(client, operator_key, session_id, url=receiver.url, inlineMedia=True).get_json()
    assert on["inlineMedia"] is True
    listed = client.get(f"/api/sessions/{session_id}/webhooks", headers=auth(operator_key)).get_json()
    assert {h["id"]: h["inlineMedia"] for h in listed} == {hook["id"]: False, on["id"]: True}
    everyone = client.get("/api/webhooks", headers=auth(operator_key)).get_json()
    assert {h["id"]: h["inlineMedia"] for h in everyone} == {hook["id"]: False, on["id"]: True}
    path = f"/api/sessions/{session_id}/webhooks/{hook['id']}"
    changed = client.put(path, json={"inlineMedia": True}, headers=auth(operator_key))
    assert changed.status_code == 200 and changed.get_json()["inlineMedia"] is True
    assert client.get(path, headers=auth(operator_key)).get_json()["inlineMedia"] is True
    back = client.put(path, json={"inlineMedia": False}, headers=auth(operator_key))
    assert back.get_json()["inlineMedia"] is False and back.get_json()["url"] == receiver.url


@pytest.mark.parametrize("value", ["yes", 1, None, "true"])
def test_inline_media_must_be_a_json_boolean(client, operator_key, session_id, receiver, value):
    reply = create(client, operator_key, session_id, url=receiver.url, inlineMedia=value)
    assert_error(reply, 400)
    assert any("inlineMedia" in line for line in reply.get_json()["message"])
    with client.application.app_context():
        assert db.session.scalar(select(Webhook)) is None
