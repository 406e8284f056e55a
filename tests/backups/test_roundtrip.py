"""Backup → disaster → restore, on real SQLite and real PostgreSQL, compared row by row."""
from __future__ import annotations

import json
import threading
import time
import uuid

from sqlalchemy import func, select

from app.extensions import db
from app.models import Backup, Message, Session
from app.services import backups
from tests.backups.conftest import Deployment, expected_in_backup
from tests.databases import head_revision


def test_backup_wipe_restore_brings_back_every_row_and_every_profile(deployment: Deployment):
    deployment.seed()
    deployment.make_profiles()
    rows = deployment.tables()
    files = deployment.profile_files()
    with deployment.context():
        record = backups.create_backup(deployment.config)
        backup_id = record.id
        assert record.status == "completed" and record.size_bytes > 0

    deployment.wipe_database()
    for child in deployment.sessions_dir.iterdir():
        if child.name != "_mocknet":
            __import__("shutil").rmtree(child)

    with deployment.context():
        report = backups.restore(deployment.config, backup_id)
    assert report.backup_id == backup_id and report.sessions == 2

    assert deployment.tables() == rows
    # Profiles come back byte for byte; lock files stay out; the mock network is left alone.
    assert deployment.profile_files() == {
        **expected_in_backup(files),
        **{path: data for path, data in files.items() if path.startswith("_mocknet")}}
    with deployment.context():
        restored = db.session.get(Backup, backup_id)
        assert restored is not None and restored.status == "completed"


def test_restore_over_a_changed_database_returns_exactly_to_the_backup(deployment: Deployment):
    deployment.seed(sessions=1, messages=10)
    deployment.make_profiles()
    rows = deployment.tables()
    with deployment.context():
        backup_id = backups.create_backup(deployment.config).id
        # After the backup: new rows, changed rows, a table of a later migration, new profile.
        session = db.session.scalar(select(Session))
        session.status = "failed"
        db.session.add(Session(name="late"))
        db.session.execute(Message.__table__.delete().where(Message.timestamp < 1_700_000_005))
        db.session.commit()
    deployment.add_table("added_later")
    (deployment.sessions_dir / "session-c").mkdir()
    (deployment.sessions_dir / "session-a" / "mock-profile.json").write_text("changed")
    assert deployment.tables() != rows

    with deployment.context():
        backups.restore(deployment.config, backup_id)

    assert deployment.tables() == rows
    assert "added_later" not in deployment.table_names()
    assert not (deployment.sessions_dir / "session-c").exists()
    assert (deployment.sessions_dir / "session-a" / "mock-profile.json").read_text().startswith(
        '{"linked"')


def test_backup_during_writes_restores_a_consistent_state(deployment: Deployment):
    """A writer commits message i and the session's counter i in one transaction; the
    restore must show messages 0..k-1 and the counter at k-1: a snapshot, never a tear."""
    deployment.seed(sessions=1, messages=2000)
    with deployment.context():
        session_id = db.session.scalar(select(Session.id))
    stop = threading.Event()
    written: list[int] = []
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            with deployment.context():
                i = 0
                while not stop.is_set():
                    db.session.add(Message(id=uuid.uuid4().hex, session_id=session_id,
                                           chat_id="w@c.us", from_me=True, body=f"w{i}",
                                           status="sent", timestamp=2_000_000_000 + i))
                    db.session.get(Session, session_id).push_name = str(i)
                    db.session.commit()
                    written.append(i)
                    i += 1
                    time.sleep(0.001)
                db.session.remove()
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            failures.append(error)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        while len(written) < 20:
            time.sleep(0.01)
        with deployment.context():
            before = len(written)
            backup_id = backups.create_backup(deployment.config).id
            during = len(written) - before
    finally:
        stop.set()
        thread.join(30)
    assert not failures, failures
    assert during > 0, "the writer made no commit while the backup ran"

    with deployment.context():
        backups.restore(deployment.config, backup_id)
        bodies = db.session.scalars(select(Message.body).where(Message.chat_id == "w@c.us")).all()
        counter = db.session.get(Session, session_id).push_name
        seeded = db.session.scalar(select(func.count()).select_from(Message)
                                   .where(Message.chat_id != "w@c.us"))
    numbers = sorted(int(body[1:]) for body in bodies)
    assert numbers == list(range(len(numbers))), "a gap: the dump is not one snapshot"
    assert before <= len(numbers) <= before + during
    assert counter == str(len(numbers) - 1)
    assert seeded == 2000


def test_manifest_lists_checksums_sizes_versions_and_revision(deployment: Deployment):
    deployment.seed(sessions=1, messages=3)
    deployment.make_profiles()
    with deployment.context():
        record = backups.create_backup(deployment.config, trigger="scheduled")
    folder = deployment.backups_dir / record.id
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["id"] == record.id and manifest["trigger"] == "scheduled"
    assert manifest["database"] == {"backend": deployment.backend, "alembic_revision": head_revision()}
    assert manifest["encryption"]["algorithm"].startswith("AES-256-GCM")
    parts = manifest["parts"]
    assert set(parts) == {"database", "sessions"}
    import hashlib
    for part in parts.values():
        data = (folder / part["file"]).read_bytes()
        assert part["size"] == len(data)
        assert part["sha256"] == hashlib.sha256(data).hexdigest()
        assert part["plain_size"] > 0 and len(part["plain_sha256"]) == 64
    assert parts["database"]["format"] == ("pg_dump-custom" if deployment.backend == "postgres"
                                           else "sqlite")
    assert parts["database"]["server_version"]
    assert sorted(parts["sessions"]["sessions"]) == ["session-a", "session-b"]
    assert manifest["signature"]["algorithm"] == "HMAC-SHA256"
    # Nothing in the stored parts is readable: no plaintext from the profiles or the rows.
    for part in parts.values():
        data = (folder / part["file"]).read_bytes()
        assert b"linked" not in data and b"message" not in data
