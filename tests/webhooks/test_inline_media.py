"""A webhook's ``inlineMedia`` (issue 12.4): a message event's stored media up to 1 MiB carries
its bytes as ``media.base64``, read from real storage (a local folder, or S3 through moto's
server on loopback) when the delivery is made and signed with the rest of the body; a larger
file, or one that is gone, says why in ``media.base64Error``; a storage that cannot be read
makes the attempt fail and be retried. A media send's ``message.sent`` carries ``media``.
Driven in-process through the service the Celery task calls."""
from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path

import boto3
import pytest
from sqlalchemy import select

from app.embedded_redis import free_port
from app.extensions import db
from app.models import Message, WebhookDelivery
from app.services import events, media, messages, webhooks
from app.services.media.storage import open_storage
from app.services.webhooks.inline import INLINE_MEDIA_MAX_BYTES
from engines import EngineEvent, EventKind
from engines.mock import ECHO_ID
from tests.conftest import auth
from tests.factories import make_message, ready_engine
from tests.media import samples
from tests.webhooks.test_delivery import SECRET, hook, rows, verify

CHAT = "15550001111@c.us"


def incoming_file(app, sid, data: bytes, n: int = 1, mimetype: str = "image/jpeg") -> str:
    """A contact sends ``data`` (the engine hands it over as base64, as the selenium engine
    does): stored for real, reported by message.received. Returns our message id."""
    with app.app_context():
        events.apply(sid, EngineEvent(EventKind.MESSAGE, {
            "id": f"false_{CHAT}_{n:06d}", "chatId": CHAT, "from": CHAT, "to": "15550002222@c.us",
            "fromMe": False, "type": "image", "caption": f"photo {n}", "timestamp": 1700000000 + n,
            "media": {"mimetype": mimetype, "base64": samples.b64(data)}}))
        return str(db.session.scalar(select(Message.id).where(
            Message.wa_message_id == f"false_{CHAT}_{n:06d}")))


def drain(app, webhook_id):
    with app.app_context():
        return webhooks.drain(webhook_id)


def delivered(receiver, event="message.received"):
    """(parsed body, raw body, lower-cased headers) of each request for ``event``."""
    found = []
    for request in list(receiver.requests):
        body = json.loads(request["body"])
        if body["event"] == event:
            found.append((body, request["body"], {k.lower(): v for k, v in request["headers"].items()}))
    return found


@pytest.fixture
def store(wh_app, tmp_path) -> Path:
    path = tmp_path / "media-store"
    wh_app.config["OPENWA"].storage_local_path = path
    return path


def test_a_small_incoming_image_arrives_inline_as_its_exact_bytes_and_signed(
        wh_app, client, operator_key, session_id, receiver, store):
    inline_id = hook(client, operator_key, session_id, receiver.url, inlineMedia=True)
    plain_id = hook(client, operator_key, session_id, receiver.url)  # the option is off
    data = samples.jpeg_of_size(INLINE_MEDIA_MAX_BYTES)  # exactly the limit: inlined
    message_id = incoming_file(wh_app, session_id, data)
    assert drain(wh_app, inline_id)["delivered"] == 1
    assert drain(wh_app, plain_id)["delivered"] == 1
    (with_bytes, raw, headers), (without, _, _) = delivered(receiver)
    assert with_bytes["data"]["id"] == message_id and without["data"]["id"] == message_id
    sent = with_bytes["data"]["media"]
    assert hashlib.sha256(base64.b64decode(sent["base64"], validate=True)).hexdigest() == samples.sha(data)
    assert "base64Error" not in sent
    assert {k: sent[k] for k in ("mimetype", "size", "url")} == {
        "mimetype": "image/jpeg", "size": len(data),
        "url": f"/api/sessions/{session_id}/messages/{message_id}/media"}
    # The signature covers the body as sent, base64 included.
    assert verify(SECRET, raw, headers["x-openwa-signature"])
    # Without the option: the history's media object, no bytes and no reason.
    assert set(without["data"]["media"]) == {"mimetype", "filename", "size", "url"}
    # The outbox row holds no bytes: they were read at delivery.
    assert all("base64" not in row.data["media"] for row in rows(wh_app))


def test_media_over_1_mib_is_not_inlined_and_says_so(
        wh_app, client, operator_key, session_id, receiver, store):
    webhook_id = hook(client, operator_key, session_id, receiver.url, inlineMedia=True)
    data = samples.jpeg_of_size(INLINE_MEDIA_MAX_BYTES + 1)
    incoming_file(wh_app, session_id, data)
    assert drain(wh_app, webhook_id)["delivered"] == 1
    [(body, raw, headers)] = delivered(receiver)
    assert "base64" not in body["data"]["media"]
    assert body["data"]["media"]["base64Error"] == "MEDIA_TOO_LARGE"
    assert body["data"]["media"]["size"] == len(data)
    assert verify(SECRET, raw, headers["x-openwa-signature"])


def test_pruned_media_is_delivered_without_bytes_and_says_why(
        wh_app, client, operator_key, session_id, receiver, store):
    webhook_id = hook(client, operator_key, session_id, receiver.url, inlineMedia=True)
    data = samples.png(seed=5)
    incoming_file(wh_app, session_id, data)
    open_storage(wh_app.config["OPENWA"]).delete(samples.sha(data))  # pruned before delivery
    assert drain(wh_app, webhook_id)["delivered"] == 1
    [(body, _, _)] = delivered(receiver)
    assert "base64" not in body["data"]["media"]
    assert body["data"]["media"]["base64Error"] == "MEDIA_GONE"


def test_an_unreadable_local_store_retries_the_delivery_until_it_is_back(
        wh_app, client, operator_key, session_id, receiver, store, tmp_path):
    webhook_id = hook(client, operator_key, session_id, receiver.url, inlineMedia=True)
    data = samples.png(seed=6)
    incoming_file(wh_app, session_id, data)
    config = wh_app.config["OPENWA"]
    broken = tmp_path / "not-a-folder"
    broken.write_bytes(b"")  # the mount is gone: reading under it fails, not "missing"
    config.storage_local_path = broken
    assert drain(wh_app, webhook_id)["retried"] == 1
    [row] = rows(wh_app)
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error.startswith("media storage:")
    assert receiver.requests == []  # nothing was posted without the bytes
    config.storage_local_path = store
    time.sleep(0.3)  # past the backoff (WEBHOOK_RETRY_DELAY 50 ms)
    assert drain(wh_app, webhook_id)["delivered"] == 1
    [(body, _, headers)] = delivered(receiver)
    assert base64.b64decode(body["data"]["media"]["base64"]) == data
    assert headers["x-openwa-retry-count"] == "1"


def test_an_unbuildable_request_is_a_dead_letter_even_while_the_storage_is_unreadable(
        wh_app, client, operator_key, session_id, receiver, store, tmp_path):
    """Reading the bytes waits for a request that can be built: a hopeless one is not retried
    as if the storage were to blame."""
    from tests.webhooks.test_unbuildable import store_raw

    webhook_id = hook(client, operator_key, session_id, receiver.url, inlineMedia=True)
    store_raw(wh_app, webhook_id, headers={"X Bad Name": "v"})
    incoming_file(wh_app, session_id, samples.png(seed=12))
    broken = tmp_path / "not-a-folder"
    broken.write_bytes(b"")
    wh_app.config["OPENWA"].storage_local_path = broken
    assert drain(wh_app, webhook_id)["dead"] == 1
    [row] = rows(wh_app)
    assert row.attempts == 1 and row.last_error.startswith("unbuildable:")


def test_turning_the_option_on_and_off_applies_to_what_is_not_delivered_yet(
        wh_app, client, operator_key, session_id, receiver, store):
    webhook_id = hook(client, operator_key, session_id, receiver.url)
    incoming_file(wh_app, session_id, samples.png(seed=7), n=1)
    reply = client.put(f"/api/sessions/{session_id}/webhooks/{webhook_id}",
                       json={"inlineMedia": True}, headers=auth(operator_key))
    assert reply.status_code == 200 and reply.get_json()["inlineMedia"] is True
    assert drain(wh_app, webhook_id)["delivered"] == 1
    [(body, _, _)] = delivered(receiver)
    assert base64.b64decode(body["data"]["media"]["base64"]) == samples.png(seed=7)


# -- S3 (moto's server on loopback: the s3_endpoint fixture of tests/conftest.py) ------------


@pytest.fixture
def s3_store(wh_app, s3_endpoint):
    bucket = f"openwa-inline-{free_port()}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test-secret").create_bucket(Bucket=bucket)
    config = wh_app.config["OPENWA"]
    config.storage_type, config.storage_s3_bucket = "minio", bucket
    config.storage_s3_endpoint, config.storage_s3_region = s3_endpoint, "us-east-1"
    config.storage_s3_access_key_id, config.storage_s3_secret_access_key = "test", "test-secret"
    return bucket


def test_s3_media_is_inlined_and_a_missing_bucket_is_retried_not_skipped(
        wh_app, client, operator_key, session_id, receiver, s3_store):
    webhook_id = hook(client, operator_key, session_id, receiver.url, inlineMedia=True)
    data = samples.jpeg_of_size(700 * 1024)
    incoming_file(wh_app, session_id, data)
    config = wh_app.config["OPENWA"]
    config.storage_s3_bucket = "no-such-bucket"  # the storage cannot be read
    assert drain(wh_app, webhook_id)["retried"] == 1
    [row] = rows(wh_app)
    assert row.status == "pending" and row.last_error.startswith("media storage:")
    assert receiver.requests == []
    config.storage_s3_bucket = s3_store
    time.sleep(0.3)
    assert drain(wh_app, webhook_id)["delivered"] == 1
    [(body, raw, headers)] = delivered(receiver)
    assert hashlib.sha256(base64.b64decode(body["data"]["media"]["base64"])).hexdigest() == samples.sha(data)
    assert verify(SECRET, raw, headers["x-openwa-signature"])


# -- message.sent carries media -------------------------------------------------------------
def _text_send(app, sid: str, body: str) -> str:
    """A committed text send, not sent yet."""
    return make_message(app, sid, id=messages.new_message_id(), wa_message_id=None,
                        chat_id=ECHO_ID, sender=None, from_me=True, body=body,
                        status="pending").id


def _media_send(app, sid: str, data: bytes, tmp_path: Path, status: str = "pending") -> str:
    """A committed image send (as send-image stages it): its stored file and caption."""
    config = app.config["OPENWA"]
    message_id = messages.new_message_id()
    source = tmp_path / "upload.png"
    source.write_bytes(data)
    with app.app_context():
        stored = media.ingest(config, source, "image", "image/png", None)
        db.session.add(Message(id=message_id, session_id=sid, chat_id=ECHO_ID, recipient=ECHO_ID,
                               from_me=True, type="image", caption="our photo", status=status,
                               timestamp=int(time.time()),
                               media=media.media_json(config, sid, message_id, stored)))
        db.session.flush()
        media.attach(message_id, sid, stored.sha256)
        db.session.commit()
    return message_id


def test_message_sent_of_a_media_send_carries_the_history_media_and_its_bytes(
        wh_app, client, operator_key, session_id, receiver, store, tmp_path):
    webhook_id = hook(client, operator_key, session_id, receiver.url, events=["message.sent"],
                      inlineMedia=True)
    data = samples.png(seed=8)
    message_id = _media_send(wh_app, session_id, data, tmp_path)
    engine = ready_engine(tmp_path / "sessions" / "s1")
    with wh_app.app_context():
        reply = messages.deliver(message_id, lambda _: engine)
    assert reply["ok"], reply
    history = client.get(f"/api/sessions/{session_id}/messages/{message_id}",
                         headers=auth(operator_key)).get_json()
    assert history["media"]["url"].endswith(f"/messages/{message_id}/media")
    with wh_app.app_context():
        [row] = db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.event == "message.sent"))
        assert row.data["media"] == history["media"]  # the stored event: no bytes, no sha256
        assert row.data["caption"] == "our photo"
    assert drain(wh_app, webhook_id)["delivered"] == 1
    [(body, raw, headers)] = delivered(receiver, "message.sent")
    sent = body["data"]["media"]
    assert {k: sent[k] for k in history["media"]} == history["media"]
    assert base64.b64decode(sent["base64"]) == data
    assert verify(SECRET, raw, headers["x-openwa-signature"])


def test_message_sent_by_an_ack_or_by_settling_an_older_send_carries_media_too(
        wh_app, client, operator_key, session_id, store, tmp_path):
    """The two other places a send is recorded ``sent``: acks handed to the host that took
    the session over (its dead host never recorded the send), and an older send settled
    before a newer one goes out."""
    hook(client, operator_key, session_id, "http://127.0.0.1:9/hook", events=["message.sent"])
    acked = _media_send(wh_app, session_id, samples.png(seed=9), tmp_path, status="sending")
    with wh_app.app_context():
        events.apply_all(session_id, [EngineEvent(EventKind.ACK, {
            "messageId": f"true_{ECHO_ID}_{acked}", "chatId": ECHO_ID, "ack": "delivered"})])
    older = _media_send(wh_app, session_id, samples.png(seed=10), tmp_path)
    newer = _text_send(wh_app, session_id, "after")
    engine = ready_engine(tmp_path / "sessions" / "s1")
    with wh_app.app_context():
        assert messages.deliver(newer, lambda _: engine)["ok"]  # settles ``older`` first
        reported = {d.data["id"]: d.data for d in db.session.scalars(
            select(WebhookDelivery).order_by(WebhookDelivery.seq))}
    assert list(reported) == [acked, older, newer]
    for message_id, data in ((acked, samples.png(seed=9)), (older, samples.png(seed=10))):
        assert reported[message_id]["media"] == {
            "mimetype": "image/png", "filename": None, "size": len(data),
            "url": f"/api/sessions/{session_id}/messages/{message_id}/media"}
        assert reported[message_id]["caption"] == "our photo"
    assert "media" not in reported[newer]


def test_message_sent_of_a_text_is_unchanged(wh_app, client, operator_key, session_id, tmp_path):
    hook(client, operator_key, session_id, "http://127.0.0.1:9/hook", events=["message.sent"])
    message_id = _text_send(wh_app, session_id, "hi")
    engine = ready_engine(tmp_path / "sessions" / "s1")
    with wh_app.app_context():
        assert messages.deliver(message_id, lambda _: engine)["ok"]
        [row] = db.session.scalars(select(WebhookDelivery))
        assert set(row.data) == {"id", "messageId", "chatId", "type", "body", "timestamp"}
