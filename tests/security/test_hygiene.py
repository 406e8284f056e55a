"""Input hygiene (issue 16, point 4): what HTTP, JSON or the databases cannot carry is a
400 in the OpenWA shape at the edge, never a 500, and nothing is stored."""
from __future__ import annotations

import json

import pytest

from tests.conftest import auth

SURROGATE = '"a\\ud800b"'  # a lone surrogate, as JSON text (json.dumps would escape it too)


def post_raw(client, path, raw: str, key: str):
    return client.post(path, data=raw.encode(), content_type="application/json", headers=auth(key))


def assert_400(response) -> list[str]:
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    assert body["statusCode"] == 400 and body["error"] == "Bad Request"
    return body["message"] if isinstance(body["message"], list) else [body["message"]]


@pytest.fixture
def sid(client, operator_key) -> str:
    return client.post("/api/sessions", json={"name": "clean"}, headers=auth(operator_key)).get_json()["id"]


@pytest.mark.parametrize("field", ["text", "quotedMessageId"])
def test_a_lone_surrogate_in_send_text_is_400(client, operator_key, sid, field):
    body = '{"chatId": "15551234567", "text": "hi", "%s": %s}' % (field, SURROGATE)
    if field == "text":
        body = '{"chatId": "15551234567", "text": %s}' % SURROGATE
    messages = assert_400(post_raw(client, f"/api/sessions/{sid}/messages/send-text", body, operator_key))
    assert any("UTF-8" in m for m in messages)


@pytest.mark.parametrize("body", [
    '{"name": %s}' % SURROGATE,
    '{"name": "k", "allowedSessions": [%s]}' % SURROGATE,
    '{"name": "k", %s: "x"}' % SURROGATE,
])
def test_a_lone_surrogate_in_a_key_is_400_and_no_key_is_stored(client, admin_key, body):
    before = len(client.get("/api/auth/api-keys", headers=auth(admin_key)).get_json())
    assert_400(post_raw(client, "/api/auth/api-keys", body, admin_key))
    keys = client.get("/api/auth/api-keys", headers=auth(admin_key))
    assert keys.status_code == 200 and len(keys.get_json()) == before


@pytest.mark.parametrize("body", [
    '{"url": "https://example.com/%s"}' % "\\ud800",
    '{"url": "https://example.com/", "secret": "0123456789abcdef%s"}' % "\\udfff",
    '{"url": "https://example.com/", "headers": {"X-Token": "%s"}}' % "\\ud800",
])
def test_a_lone_surrogate_in_a_webhook_is_400(client, operator_key, sid, body):
    assert_400(post_raw(client, f"/api/sessions/{sid}/webhooks", body, operator_key))
    assert client.get(f"/api/sessions/{sid}/webhooks", headers=auth(operator_key)).get_json() == []


@pytest.mark.parametrize("headers, needle", [
    ({"X-Token": "日本語"}, "headers.X-Token"),
    ({"X-Token": "a\r\nX-Injected: 1"}, "headers.X-Token"),
    ({"X-Token": "a\nb"}, "headers.X-Token"),
    ({"X-Token": " padded"}, "headers.X-Token"),
    ({"X Token": "a"}, "headers"),
    ({"X-Tök": "a"}, "headers"),
    ({"": "a"}, "headers"),
])
def test_webhook_headers_http_cannot_carry_are_400(client, operator_key, sid, headers, needle):
    reply = client.post(f"/api/sessions/{sid}/webhooks",
                        json={"url": "https://93.184.215.14/h", "headers": headers},
                        headers=auth(operator_key))
    messages = assert_400(reply)
    assert any(m.startswith(needle) for m in messages), messages
    for value in headers.values():  # a write-only value is never echoed
        assert value not in json.dumps(reply.get_json()) or value in ("a",)


@pytest.mark.parametrize("url", ["https://example.com/a\r\nX-Injected: 1", "https://exa mple.com/",
                                 "https://example.com/\x00", "javascript:alert(1)"])
def test_webhook_urls_with_control_characters_are_400(client, operator_key, sid, url):
    assert_400(client.post(f"/api/sessions/{sid}/webhooks", json={"url": url},
                           headers=auth(operator_key)))


def test_latin1_header_values_are_accepted(client, operator_key, sid):
    reply = client.post(f"/api/sessions/{sid}/webhooks",
                        json={"url": "https://93.184.215.14/h", "headers": {"X-Name": "Zoë Ørsted"}},
                        headers=auth(operator_key))
    assert reply.status_code == 201, reply.get_json()


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_over_deep_json_is_400(client, operator_key, sid, depth):
    body = '{"chatId": "15551234567", "text": "hi", "mentions": ' + "[" * depth + "]" * depth + "}"
    messages = assert_400(post_raw(client, f"/api/sessions/{sid}/messages/send-text", body, operator_key))
    assert any("nests deeper" in m for m in messages)


@pytest.mark.parametrize("number", ["1" * 4301, "9" * 30, "-" + "9" * 20, "1e400"])
def test_out_of_range_numbers_are_400(client, operator_key, sid, number):
    body = '{"url": "https://93.184.215.14/h", "retryCount": %s}' % number
    messages = assert_400(post_raw(client, f"/api/sessions/{sid}/webhooks", body, operator_key))
    assert any("out of range" in m or "number" in m for m in messages)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_constants_are_400(client, operator_key, sid, constant):
    body = '{"url": "https://93.184.215.14/h", "retryCount": %s}' % constant
    assert_400(post_raw(client, f"/api/sessions/{sid}/webhooks", body, operator_key))


@pytest.mark.parametrize("arg", ["until", "since"])
@pytest.mark.parametrize("value", ["9300000000000000000000", "9223372036854775808", "1" * 5000])
def test_huge_history_bounds_are_400(client, viewer_key, sid, arg, value):
    assert_400(client.get(f"/api/sessions/{sid}/messages?{arg}={value}", headers=auth(viewer_key)))


def test_invalid_utf8_bytes_are_400(client, admin_key):
    assert_400(client.post("/api/auth/api-keys", data=b'{"name": "\xff\xfe"}',
                           content_type="application/json", headers=auth(admin_key)))


def test_a_put_without_a_body_is_400(client, admin_key, make_key, app):
    from app.services import api_keys
    with app.app_context():
        target = api_keys.list_keys()[0].id
    for body in (None, "{}"):
        reply = client.put(f"/api/auth/api-keys/{target}", data=body,
                           content_type="application/json", headers=auth(admin_key))
        assert any("at least one field" in m for m in assert_400(reply))


def test_get_on_send_text_is_405_with_allow_not_a_message_lookup(client, viewer_key, sid):
    reply = client.get(f"/api/sessions/{sid}/messages/send-text", headers=auth(viewer_key))
    assert reply.status_code == 405
    assert reply.get_json()["statusCode"] == 405
    assert set(reply.headers["Allow"].replace(" ", "").split(",")) == {"POST", "OPTIONS"}


def test_every_405_names_the_allowed_methods(client, viewer_key):
    reply = client.patch("/api/sessions", headers=auth(viewer_key))
    assert reply.status_code == 405
    assert {"GET", "POST"} <= set(reply.headers["Allow"].replace(" ", "").split(","))
