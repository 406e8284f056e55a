"""A restore that cannot be trusted, or that would hurt a running deployment, changes nothing."""
from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.backups import BackupCorrupt, BackupError, BackupNotFound, LiveDeployment, WrongKey
from app.backups.crypto import BackupKey
from app.backups.manifest import encode
from app.config import Config
from app.extensions import db
from app.models import Backup, Host, Session, utcnow
from app.services import backups
from tests.backups.conftest import Deployment, new_key


def _backup(deployment: Deployment) -> str:
    deployment.seed(sessions=1, messages=5)
    deployment.make_profiles()
    with deployment.context():
        return backups.create_backup(deployment.config).id


def _change_after_backup(deployment: Deployment) -> None:
    """State that differs from the backup, which a refused restore must leave as it is."""
    with deployment.context():
        db.session.add(Session(name="after-the-backup"))
        db.session.commit()
    (deployment.sessions_dir / "session-new").mkdir()
    (deployment.sessions_dir / "session-new" / "f").write_text("new")


def _assert_refused(deployment: Deployment, backup_id: str, error: type[BackupError],
                    match: str, config: Config | None = None) -> None:
    _change_after_backup(deployment)
    rows, files = deployment.tables(), deployment.profile_files()
    with deployment.context():
        with pytest.raises(error, match=match):
            backups.restore(config or deployment.config, backup_id)
    assert deployment.tables() == rows
    assert deployment.profile_files() == files
    assert not [p for p in deployment.sessions_dir.iterdir() if p.name.startswith(".openwa")]


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _resign(deployment: Deployment, backup_id: str, change) -> None:  # type: ignore[no-untyped-def]
    """Rewrite a manifest as someone holding the key would: validly signed."""
    path = deployment.backups_dir / backup_id / "manifest.json"
    body = json.loads(path.read_text())
    body.pop("signature")
    change(body)
    path.write_bytes(encode(body, BackupKey(deployment.config.encryption_key)))


def test_checksum_mismatch_is_refused_before_decrypting(deployment: Deployment):
    backup_id = _backup(deployment)
    _flip_byte(deployment.backups_dir / backup_id / "sessions.tar.gz.enc", 100)
    _assert_refused(deployment, backup_id, BackupCorrupt, "checksum mismatch in sessions")


def test_corrupted_archive_with_matching_checksums_fails_authentication(sqlite_deployment):
    """Damage the manifest's checksums could not see (they were computed after it):
    the AES-GCM tags catch it."""
    deployment = sqlite_deployment
    backup_id = _backup(deployment)
    part = deployment.backups_dir / backup_id / "database.sqlite.gz.enc"
    _flip_byte(part, part.stat().st_size // 2)
    import hashlib
    digest = hashlib.sha256(part.read_bytes()).hexdigest()
    _resign(deployment, backup_id,
            lambda body: body["parts"]["database"].update(sha256=digest))
    _assert_refused(deployment, backup_id, BackupCorrupt, "failed authentication")


def test_truncated_archive_is_refused(sqlite_deployment):
    deployment = sqlite_deployment
    backup_id = _backup(deployment)
    part = deployment.backups_dir / backup_id / "sessions.tar.gz.enc"
    part.write_bytes(part.read_bytes()[:-40])
    _assert_refused(deployment, backup_id, BackupCorrupt, "checksum mismatch")


def test_altered_manifest_is_refused(sqlite_deployment):
    deployment = sqlite_deployment
    backup_id = _backup(deployment)
    path = deployment.backups_dir / backup_id / "manifest.json"
    path.write_text(path.read_text().replace('"trigger": "manual"', '"trigger": "scheduled"'))
    _assert_refused(deployment, backup_id, BackupCorrupt, "manifest failed authentication")


def test_damaged_manifest_is_refused(sqlite_deployment):
    deployment = sqlite_deployment
    backup_id = _backup(deployment)
    (deployment.backups_dir / backup_id / "manifest.json").write_text("{not json")
    _assert_refused(deployment, backup_id, BackupCorrupt, "manifest is damaged")


def test_wrong_key_is_refused_with_the_key_ids(deployment: Deployment):
    backup_id = _backup(deployment)
    other = dataclasses.replace(deployment.config, encryption_key=new_key())
    made_with = BackupKey(deployment.config.encryption_key).key_id
    _assert_refused(deployment, backup_id, WrongKey,
                    rf"made with another ENCRYPTION_KEY \(key id {made_with}; the keys set "
                    rf"here have key id {BackupKey(other.encryption_key).key_id}\)\. .*"
                    rf"or add it to ENCRYPTION_KEY_PREVIOUS", config=other)


def test_after_a_key_rotation_old_backups_restore_with_the_previous_key(sqlite_deployment):
    deployment = sqlite_deployment
    old = deployment.config.encryption_key
    backup_id = _backup(deployment)
    rows = deployment.tables()
    rotated = dataclasses.replace(deployment.config, encryption_key=new_key(),
                                  encryption_key_previous=[new_key(), old])
    _change_after_backup(deployment)
    with deployment.context():
        backups.restore(rotated, backup_id)
        newer = backups.create_backup(rotated).id
        ids = {b.id: b.status for b in backups.list_backups(rotated)}
    assert deployment.tables() == rows
    assert ids == {backup_id: "completed", newer: "completed"}
    key_ids = {json.loads((deployment.backups_dir / i / "manifest.json").read_text())
               ["encryption"]["key_id"] for i in ids}
    assert key_ids == {BackupKey(old).key_id, BackupKey(rotated.encryption_key).key_id}


def test_unset_key_stops_backup_and_restore_with_how_to_fix_it(sqlite_deployment):
    deployment = sqlite_deployment
    backup_id = _backup(deployment)
    unset = dataclasses.replace(deployment.config, encryption_key=None)
    with deployment.context():
        with pytest.raises(BackupError, match="ENCRYPTION_KEY is not set.*openssl rand"):
            backups.create_backup(unset)
        failed = db.session.scalars(select(Backup).where(Backup.status == "failed")).all()
        assert len(failed) == 1 and "ENCRYPTION_KEY is not set" in failed[0].error
        assert [p.name for p in deployment.backups_dir.iterdir()
                if not p.name.startswith(".")] == [backup_id]
    _assert_refused(deployment, backup_id, BackupError, "ENCRYPTION_KEY is not set",
                    config=unset)


def test_unknown_backup_is_refused(sqlite_deployment):
    with sqlite_deployment.context():
        with pytest.raises(BackupNotFound, match="no backup 20200101T000000Z-abcdef"):
            backups.restore(sqlite_deployment.config, "20200101T000000Z-abcdef")
        with pytest.raises(BackupNotFound, match="not a backup id"):
            backups.restore(sqlite_deployment.config, "../../etc")
        with pytest.raises(BackupNotFound, match="there is no backup"):
            backups.restore(sqlite_deployment.config, "latest")


def test_backup_from_a_newer_schema_is_refused(sqlite_deployment):
    deployment = sqlite_deployment
    backup_id = _backup(deployment)
    _resign(deployment, backup_id,
            lambda body: body["database"].update(alembic_revision="0099"))
    _assert_refused(deployment, backup_id, BackupError, "schema revision 0099, which this version")


def test_backup_of_another_database_kind_is_refused(sqlite_deployment):
    deployment = sqlite_deployment
    backup_id = _backup(deployment)
    _resign(deployment, backup_id, lambda body: body["database"].update(backend="postgres"))
    _assert_refused(deployment, backup_id, BackupError,
                    "holds a PostgreSQL database, but this deployment uses SQLite")


@pytest.mark.parametrize("running", ["host", "session"])
def test_restore_refuses_a_live_deployment_without_force(deployment: Deployment, running: str):
    backup_id = _backup(deployment)
    with deployment.context():
        if running == "host":
            db.session.add(Host(name="host@live", capacity=5, held=0, last_heartbeat=utcnow()))
        else:
            session = db.session.scalar(select(Session))
            session.lease_holder = "host@gone"
            session.lease_expires_at = utcnow() + timedelta(seconds=30)
        db.session.commit()
    reason = "session host\\(s\\) running \\(host@live\\)" if running == "host" else \
        "1 session\\(s\\) held by a host"
    _assert_refused(deployment, backup_id, LiveDeployment,
                    f"refusing to restore over a live deployment: .*{reason}.*--force")

    with deployment.context():
        backups.restore(deployment.config, backup_id, force=True)
        assert db.session.scalar(select(Host).where(Host.name == "host@live")) is None
        assert db.session.scalar(select(Session).where(Session.name == "after-the-backup")) is None
