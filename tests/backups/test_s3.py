"""Backups in S3, against a real S3-compatible server on loopback (moto's server)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from sqlalchemy import select

from app.backups import BackupError
from app.extensions import db
from app.models import Backup
from app.services import backups
from tests.backups.conftest import Deployment, expected_in_backup, make_deployment

BUCKET = "openwa-backups"


S3_ENV = {"STORAGE_S3_REGION": "us-east-1", "STORAGE_S3_ACCESS_KEY_ID": "test",
          "STORAGE_S3_SECRET_ACCESS_KEY": "test-secret", "STORAGE_S3_FORCE_PATH_STYLE": "true"}


@pytest.fixture
def s3(s3_endpoint: str, tmp_path: Path) -> Iterator[tuple[Deployment, object]]:
    """A SQLite deployment whose backups go to a fresh bucket (STORAGE_TYPE=minio)."""
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test-secret")
    client.create_bucket(Bucket=BUCKET)
    deployment = make_deployment(tmp_path, "sqlite", str(tmp_path / "openwa.db"),
                                 STORAGE_TYPE="minio", STORAGE_S3_BUCKET="media",
                                 BACKUP_S3_BUCKET=BUCKET, STORAGE_S3_ENDPOINT=s3_endpoint,
                                 **S3_ENV)
    yield deployment, client
    with deployment.context():
        db.engine.dispose()
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def _keys(client) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=BUCKET)
                  .get("Contents", []))


def test_backup_to_s3_and_restore_from_it(s3):
    deployment, client = s3
    deployment.seed()
    deployment.make_profiles()
    rows, files = deployment.tables(), deployment.profile_files()
    with deployment.context():
        record = backups.create_backup(deployment.config)
    assert record.storage == "s3"
    assert record.location == f"s3://{BUCKET}/backups/{record.id}/"
    assert _keys(client) == [f"backups/{record.id}/{name}" for name in
                             ("database.sqlite.gz.enc", "manifest.json", "sessions.tar.gz.enc")]
    assert not deployment.backups_dir.exists() or not any(deployment.backups_dir.iterdir())

    deployment.wipe_database()
    for child in deployment.sessions_dir.iterdir():
        if child.name != "_mocknet":
            __import__("shutil").rmtree(child)
    with deployment.context():
        backups.restore(deployment.config, "latest")
        assert db.session.get(Backup, record.id).status == "completed"
    assert deployment.tables() == rows
    restored = deployment.profile_files()
    assert {k: v for k, v in restored.items() if not k.startswith("_mocknet")} == \
        expected_in_backup(files)


def test_a_new_server_lists_the_backups_in_the_bucket_before_it_has_a_schema(s3, tmp_path):
    deployment, _ = s3
    with deployment.context():
        made = backups.create_backup(deployment.config).id
    # A new server: an empty database with no tables, the same bucket and key.
    deployment.wipe_database()
    with deployment.context():
        listed = backups.list_backups(deployment.config)
    assert [(b.id, b.status) for b in listed] == [(made, "completed")]


def test_retention_deletes_old_backups_from_the_bucket(s3, backdate):
    deployment, client = s3
    config = deployment.config
    config.backup_retention_daily, config.backup_retention_weekly = 1, 0
    config.backup_retention_monthly = 0
    with deployment.context():
        backdate(2)
        first = backups.create_backup(config).id
        backdate(0)
        second = backups.create_backup(config).id
        assert backups.apply_retention(config) == [first]
        assert {key.split("/")[1] for key in _keys(client)} == {second}
        assert db.session.get(Backup, first) is None


def test_missing_bucket_fails_clearly_and_is_recorded(s3):
    deployment, _ = s3
    deployment.config.backup_s3_bucket = "no-such-bucket"
    with deployment.context():
        with pytest.raises(BackupError, match=r"S3 \(s3://no-such-bucket/backups/\): cannot "
                                              r"open the bucket"):
            backups.create_backup(deployment.config)
        failed = db.session.scalars(select(Backup)).all()
        assert [b.status for b in failed] == ["failed"]
