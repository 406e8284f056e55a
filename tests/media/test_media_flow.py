"""Every media type end to end on the mock engine, across real processes: API → (media
worker for a URL) → session host → engine → history → webhook → GET .../media, checked by
checksum; the echo contact sends each file back, and that arrives stored too."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from tests.integration.conftest import wait_for
from tests.media import samples
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.integration

ECHO = "15550000000@c.us"


def _fetch_media(platform, path):
    reply = platform.api("GET", path)
    assert reply.status_code == 200, reply.get_json()
    return reply


def _echo_of(receiver, kind, caption=None):
    for event in receiver.events("message.received"):
        data = event["data"]
        if data["type"] == kind and data["from"] == ECHO and data.get("caption") == caption:
            return data
    return None


CASES = [
    ("image", samples.png(seed=3), "image/png", {"caption": "a photo"}),
    ("video", samples.mp4(), "video/mp4", {"caption": "a clip"}),
    ("audio", samples.ogg_opus(), "audio/ogg", {"ptt": True}),
    ("document", samples.pdf(200), "application/pdf", {"filename": "invoice.pdf", "caption": "your invoice"}),
]


def test_every_type_sent_inline_and_echoed_back_carries_the_same_bytes(media_platform):
    platform, receiver, session = media_platform
    for kind, data, mimetype, extra in CASES:
        reply = platform.api("POST", f"/sessions/media/messages/send-{kind}",
                             json={"chatId": "15550000000", "base64": samples.b64(data),
                                   "mimetype": mimetype, **extra})
        assert reply.status_code == 201, (kind, reply.get_json())
        wa_id = reply.get_json()["messageId"]
        stored = platform.api("GET", f"/sessions/media/messages/{wa_id}").get_json()
        assert stored["type"] == kind and stored["media"]["mimetype"] == mimetype
        assert stored["media"]["size"] == len(data) and stored["caption"] == extra.get("caption")
        got = _fetch_media(platform, stored["media"]["url"].removeprefix("/api"))
        assert hashlib.sha256(got.data).hexdigest() == samples.sha(data)
        assert got.mimetype == mimetype
        if kind == "document":
            assert 'filename=invoice.pdf' in got.headers["Content-Disposition"]
        # The echo contact sends it back: stored, in the history and the webhook, same bytes.
        echo = wait_for(lambda: _echo_of(receiver, kind, extra.get("caption")), 40, 0.1,
                        f"the echoed {kind} at the webhook")
        assert echo["media"]["mimetype"] == mimetype and echo["media"]["size"] == len(data)
        back = _fetch_media(platform, echo["media"]["url"].removeprefix("/api"))
        assert hashlib.sha256(back.data).hexdigest() == samples.sha(data)
    sent = [e["data"] for e in receiver.events("message.sent")]
    assert sorted(e["type"] for e in sent) == sorted(kind for kind, *_ in CASES)
    # Stored once each though sent and received: content-addressed.
    store = platform.app.config["OPENWA"].storage_local_path
    assert len([p for p in store.rglob("*") if p.is_file()]) == len(CASES)


def test_a_sticker_is_sent_as_webp(media_platform):
    platform, receiver, _ = media_platform
    reply = platform.api("POST", "/sessions/media/messages/send-sticker",
                         json={"chatId": "15550000000", "base64": samples.b64(samples.png(700))})
    assert reply.status_code == 201, reply.get_json()
    stored = platform.api("GET", f"/sessions/media/messages/{reply.get_json()['messageId']}").get_json()
    assert stored["media"]["mimetype"] == "image/webp"
    got = _fetch_media(platform, stored["media"]["url"].removeprefix("/api"))
    assert got.data[:4] == b"RIFF" and got.data[8:12] == b"WEBP"


def test_a_url_is_fetched_by_the_media_worker_and_sent(media_platform, files):
    platform, receiver, _ = media_platform
    platform.app.config["OPENWA"].send_wait_timeout = 10.0  # fetch + send, on a loaded machine
    data = samples.jpeg_of_size(300_000)
    files.routes["/photo.jpg"] = (200, {"Content-Type": "image/jpeg"}, data)
    reply = platform.api("POST", "/sessions/media/messages/send-image",
                         json={"chatId": "15550000000", "url": files.url("/photo.jpg"), "caption": "from a url"})
    assert reply.status_code == 201, reply.get_json()
    stored = platform.api("GET", f"/sessions/media/messages/{reply.get_json()['messageId']}").get_json()
    assert stored["status"] in ("sent", "delivered", "read") and stored["media"]["size"] == len(data)
    got = _fetch_media(platform, stored["media"]["url"].removeprefix("/api"))
    assert hashlib.sha256(got.data).hexdigest() == samples.sha(data)
    assert files.hits == ["/photo.jpg"]  # fetched once, by the media worker


def test_a_url_that_lies_about_its_size_fails_the_message_with_a_reason(media_platform, files):
    platform, receiver, _ = media_platform
    platform.app.config["OPENWA"].send_wait_timeout = 10.0
    limit = platform.app.config["OPENWA"].media_max_bytes
    # Says nothing of its size and sends more than MEDIA_MAX_BYTES: cut off at the cap.
    files.routes["/liar.pdf"] = (200, {"Content-Length": "omit"}, samples.pdf() + b"x" * (limit + 10))
    # Says it is over the cap: refused before its body is read.
    files.routes["/big.pdf"] = (200, {"Content-Length": str(limit + 10)}, samples.pdf())
    for path in ("/liar.pdf", "/big.pdf"):
        reply = platform.api("POST", "/sessions/media/messages/send-document",
                             json={"chatId": "15550000000", "url": files.url(path)})
        assert reply.status_code == 413, reply.get_json()
        assert reply.get_json()["code"] == "MEDIA_TOO_LARGE"
    failed = wait_for(lambda: len(receiver.events("message.failed")) >= 2 and receiver.events("message.failed"),
                      20, 0.1, "two message.failed")
    assert all("MEDIA_MAX_BYTES" in event["data"]["error"] for event in failed)


def test_a_mimetype_that_lies_about_the_bytes_is_a_400_inline_and_a_failure_by_url(media_platform, files):
    platform, receiver, _ = media_platform
    reply = platform.api("POST", "/sessions/media/messages/send-image",
                         json={"chatId": "15550000000", "base64": samples.b64(samples.pdf()),
                               "mimetype": "image/png"})
    assert reply.status_code == 400 and "not an image" in reply.get_json()["message"][0]
    files.routes["/fake.png"] = (200, {"Content-Type": "image/png"}, samples.pdf())
    reply = platform.api("POST", "/sessions/media/messages/send-image",
                         json={"chatId": "15550000000", "url": files.url("/fake.png")})
    assert reply.status_code == 400 and reply.get_json()["code"] == "MEDIA_REJECTED"
    failed = wait_for(lambda: receiver.events("message.failed"), 40, 0.1, "message.failed")
    assert "application/pdf" in failed[0]["data"]["error"]


def test_an_inline_body_over_the_cap_is_413_and_nothing_is_stored(media_platform):
    platform, receiver, _ = media_platform
    platform.app.config["OPENWA"].media_max_bytes = 1000
    reply = platform.api("POST", "/sessions/media/messages/send-document",
                         json={"chatId": "15550000000", "base64": samples.b64(samples.pdf(2000))})
    assert reply.status_code == 413 and reply.get_json()["code"] == "MEDIA_TOO_LARGE"
    store = platform.app.config["OPENWA"].storage_local_path
    assert not store.exists() or not [p for p in store.rglob("*") if p.is_file()]


def test_incoming_media_from_a_contact_is_stored_and_served(media_platform):
    platform, receiver, _ = media_platform
    data = samples.mp4(200_000)
    reply = platform.api("POST", "/sessions/media/mock/incoming-media",
                         json={"chatId": "15551234567", "type": "video", "base64": samples.b64(data),
                               "mimetype": "video/mp4", "caption": "look"})
    assert reply.status_code == 200, reply.get_json()
    event = wait_for(lambda: receiver.events("message.received"), 40, 0.1, "message.received")[0]["data"]
    assert event["type"] == "video" and event["media"]["size"] == len(data)
    assert event["media"]["url"] == f"/api/sessions/{event['sessionId']}/messages/{event['id']}/media"
    got = _fetch_media(platform, event["media"]["url"].removeprefix("/api"))
    assert hashlib.sha256(got.data).hexdigest() == samples.sha(data)


def test_a_webhook_with_inline_media_gets_the_bytes_from_the_worker_across_processes(media_platform):
    """issue 12.4: the `webhooks` worker (another process) reads the stored file and inlines
    it, signed; the fixture's webhook (option off) gets the same event without bytes; the
    send's message.sent carries the history's media."""
    platform, receiver, _ = media_platform
    inline = Receiver().start()
    try:
        secret = "inline-media-secret-0123"
        reply = platform.api("POST", "/sessions/media/webhooks", json={
            "url": inline.url, "events": ["message.received", "message.sent"], "secret": secret,
            "inlineMedia": True})
        assert reply.status_code == 201 and reply.get_json()["inlineMedia"] is True
        data = samples.png(300, seed=11)
        reply = platform.api("POST", "/sessions/media/mock/incoming-media",
                             json={"chatId": "15551234567", "type": "image", "base64": samples.b64(data),
                                   "mimetype": "image/png", "caption": "inline me"})
        assert reply.status_code == 200, reply.get_json()
        request = wait_for(lambda: next((r for r in inline.requests
                                         if json.loads(r["body"])["event"] == "message.received"), None),
                           40, 0.1, "message.received at the inlining webhook")
        media = json.loads(request["body"])["data"]["media"]
        assert hashlib.sha256(base64.b64decode(media["base64"])).hexdigest() == samples.sha(data)
        signature = {k.lower(): v for k, v in request["headers"].items()}["x-openwa-signature"]
        assert signature == "sha256=" + hmac.new(secret.encode(), request["body"], hashlib.sha256).hexdigest()
        plain = wait_for(lambda: receiver.events("message.received"), 40, 0.1, "the plain webhook")
        assert "base64" not in plain[0]["data"]["media"]
        # A media send: message.sent carries the media object of its history, inlined here.
        sent = platform.api("POST", "/sessions/media/messages/send-image",
                            json={"chatId": "15550000000", "base64": samples.b64(data), "caption": "out"})
        assert sent.status_code == 201, sent.get_json()
        history = platform.api("GET", f"/sessions/media/messages/{sent.get_json()['messageId']}").get_json()
        event = wait_for(lambda: next((e["data"] for e in inline.events("message.sent")), None),
                         40, 0.1, "message.sent at the inlining webhook")
        assert {k: event["media"][k] for k in history["media"]} == history["media"]
        assert base64.b64decode(event["media"]["base64"]) == data and event["caption"] == "out"
    finally:
        inline.stop()
