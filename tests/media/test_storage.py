"""Media storage: local files and S3 (moto's server on loopback), content-addressed; retention
pruning; a session delete removes the files only it used."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import boto3
import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.models import Message, Session, utcnow
from app.models.media import MediaObject, MediaRef
from app.services import media
from app.services.media.storage import LocalMediaStorage, MediaMissing, S3MediaStorage, open_storage
from tests.conftest import auth
from tests.media import samples


def test_s3_storage_stores_once_and_streams_back(config, s3_endpoint, tmp_path):
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test-secret")
    client.create_bucket(Bucket="openwa-media")
    config.storage_type, config.storage_s3_bucket = "minio", "openwa-media"
    config.storage_s3_endpoint, config.storage_s3_region = s3_endpoint, "us-east-1"
    config.storage_s3_access_key_id, config.storage_s3_secret_access_key = "test", "test-secret"
    store = open_storage(config)
    assert isinstance(store, S3MediaStorage)
    data = samples.mp4(3 * 1024 * 1024)
    source = tmp_path / "clip.mp4"
    source.write_bytes(data)
    digest = samples.sha(data)
    store.put(digest, source, "video/mp4")
    store.put(digest, source, "video/mp4")  # again: a no-op
    keys = [item["Key"] for item in client.list_objects_v2(Bucket="openwa-media")["Contents"]]
    assert keys == [f"media/{digest}"]
    assert client.head_object(Bucket="openwa-media", Key=keys[0])["ContentType"] == "video/mp4"
    with store.open(digest) as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == digest
    with store.local_file(digest) as path:
        assert path.read_bytes() == data
    store.delete(digest)
    assert not store.exists(digest)
    with pytest.raises(MediaMissing):
        store.open(digest)


def test_local_storage_is_content_addressed_and_private(tmp_path):
    store = LocalMediaStorage(tmp_path / "media")
    source = tmp_path / "a.png"
    source.write_bytes(samples.png())
    digest = samples.sha(samples.png())
    store.put(digest, source, "image/png")
    path = store.path(digest)
    assert path == tmp_path / "media" / digest[:2] / digest and path.read_bytes() == samples.png()
    assert path.stat().st_mode & 0o077 == 0
    with pytest.raises(MediaMissing):
        store.open("0" * 64)
    with pytest.raises(MediaMissing):
        store.open("../../etc/passwd")


def _session_with_media(app, config, name, files):
    """A stopped session whose messages carry ``files`` (bytes), stored for real."""
    with app.app_context():
        session = Session(name=name, status="stopped", desired_state="stopped")
        db.session.add(session)
        db.session.flush()
        for n, data in enumerate(files):
            path = config.data_dir / f"{name}-{n}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            stored = media.ingest(config, path, "document", None, None)
            message_id = f"M{name}{n}".ljust(12, "0")
            db.session.add(Message(id=message_id, session_id=session.id, chat_id="1555@c.us", from_me=True,
                                   type="document", status="sent", timestamp=1,
                                   media=media.media_json(config, session.id, message_id, stored)))
            db.session.flush()
            media.attach(message_id, session.id, stored.sha256)
        db.session.commit()
        return session.id


def test_deleting_a_session_removes_only_the_files_no_other_session_uses(app, client, admin_key, config, tmp_path):
    config.storage_local_path = tmp_path / "store"
    shared, own, other = samples.pdf(10), samples.pdf(20), samples.pdf(30)
    _session_with_media(app, config, "keep", [shared, other])
    _session_with_media(app, config, "gone", [shared, own])
    store = open_storage(config)
    assert all(store.exists(samples.sha(d)) for d in (shared, own, other))
    reply = client.delete("/api/sessions/gone", headers=auth(admin_key))
    assert reply.status_code == 204, reply.get_json()
    assert store.exists(samples.sha(shared)) and store.exists(samples.sha(other))
    assert not store.exists(samples.sha(own))
    with app.app_context():
        assert db.session.scalar(select(MediaObject).where(MediaObject.sha256 == samples.sha(own))) is None
        assert {r.sha256 for r in db.session.scalars(select(MediaRef))} == {samples.sha(shared), samples.sha(other)}


def test_retention_prunes_files_unused_for_media_retention_days(app, client, admin_key, config, tmp_path):
    config.storage_local_path = tmp_path / "store"
    config.media_retention_days = 30
    old, recent = samples.pdf(11), samples.pdf(12)
    _session_with_media(app, config, "ret", [old, recent])
    with app.app_context():
        db.session.execute(update(MediaObject).where(MediaObject.sha256 == samples.sha(old))
                           .values(last_used_at=utcnow() - timedelta(days=31)))
        db.session.commit()
        assert media.prune(config) == 1
    store = open_storage(config)
    assert not store.exists(samples.sha(old)) and store.exists(samples.sha(recent))
    listing = client.get("/api/sessions/ret/messages", headers=auth(admin_key)).get_json()["messages"]
    by_size = {m["media"]["size"]: m["id"] for m in listing}
    gone = client.get(f"/api/sessions/ret/messages/{by_size[len(old)]}/media", headers=auth(admin_key))
    assert gone.status_code == 404
    kept = client.get(f"/api/sessions/ret/messages/{by_size[len(recent)]}/media", headers=auth(admin_key))
    assert kept.status_code == 200 and kept.data == recent


def test_a_file_no_message_carries_is_pruned_after_a_day(app, config, tmp_path):
    config.storage_local_path = tmp_path / "store"
    path = tmp_path / "orphan.pdf"
    path.write_bytes(samples.pdf(13))
    with app.app_context():
        stored = media.ingest(config, path, "document", None, None)
        db.session.commit()
        assert media.prune(config) == 0  # younger than a day: a send may be about to attach it
        db.session.execute(update(MediaObject).values(created_at=utcnow() - timedelta(days=2)))
        db.session.commit()
        assert media.prune(config) == 1
    assert not open_storage(config).exists(stored.sha256)
