"""Backups and restores: the work behind ``openwa backup``, ``backups list``, ``restore``
and the scheduled beat task.

A backup is two parts, the database and the session profiles, each gzipped and encrypted
as it streams (``app.backups``), stored with a signed manifest of checksums, and recorded
in the ``backups`` table. A restore verifies the manifest, the checksums and every
encrypted chunk, and unpacks everything into scratch space, before it changes anything.
"""
from __future__ import annotations

import hashlib
import logging
import platform
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import delete, func, inspect, select, text, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from app.backups import (
    BackupCorrupt,
    BackupError,
    BackupNotFound,
    BackupRunning,
    LiveDeployment,
    WrongKey,
    database,
    manifest,
    profiles,
    retention,
)
from app.backups.crypto import ALGORITHM, CHUNK_SIZE, BackupKey
from app.backups.progress import NoProgress, Progress
from app.backups.storage import Storage, open_storage
from app.backups.streams import HashingWriter, PartDigest, file_sha256, open_part, write_part
from app.config import Config
from app.db_setup import MIGRATIONS_DIR
from app.extensions import db
from app.models import Backup, Session, utcnow
from app.models.backup import COMPLETED, FAILED, RUNNING
from app.services import audit, hosts, key_cache
from app.version import VERSION

log = logging.getLogger(__name__)

DATABASE, SESSIONS = "database", "sessions"
PART_FILES = {**{name: s.part_file for name, s in database.STRATEGIES.items()},
              SESSIONS: "sessions.tar.gz.enc"}
# A running backup whose heartbeat is older than this was interrupted (its process died).
STALE_AFTER = timedelta(minutes=10)
HEARTBEAT_SECONDS = 15.0
# Failed runs stay listed this long, for the operator to see, then retention forgets them.
FAILED_KEPT = timedelta(days=30)
# Parts without a manifest this old were left by a process that died mid-backup.
INCOMPLETE_KEPT = timedelta(days=1)
BACKENDS = {name: s.label for name, s in database.STRATEGIES.items()}


# -- records -----------------------------------------------------------------------
def new_backup_id(now: datetime) -> str:
    return f"{now.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def backup_time(backup_id: str) -> datetime:
    """When a backup was started, read from its id."""
    return datetime.strptime(backup_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def _reap_interrupted(now: datetime) -> None:
    db.session.execute(
        update(Backup)
        .where(Backup.status == RUNNING, Backup.heartbeat_at < now - STALE_AFTER)
        .values(status=FAILED, finished_at=now,
                error="interrupted: the process taking it stopped before it finished")
        .execution_options(synchronize_session=False))
    db.session.commit()


def _running() -> Backup | None:
    return db.session.scalar(select(Backup).where(Backup.status == RUNNING)
                             .order_by(Backup.started_at.desc()).limit(1))


def _start_record(config: Config, storage: Storage, trigger: str) -> str:
    now = utcnow()
    try:
        _reap_interrupted(now)
        running = _running()
        if running is not None:
            raise BackupRunning(f"backup {running.id} is in progress (started "
                                f"{running.started_at:%Y-%m-%d %H:%M:%S} UTC); try again when "
                                f"it has finished")
        backup_id = new_backup_id(now)
        db.session.add(Backup(id=backup_id, status=RUNNING, trigger=trigger, storage=storage.kind,
                              location=storage.location(backup_id),
                              database_backend=config.database_type, started_at=now,
                              heartbeat_at=now))
        db.session.commit()
    except DBAPIError as error:
        db.session.rollback()
        raise BackupError(f"cannot record the backup in the database ({error.orig}); is the "
                          f"schema up to date? Run `openwa db upgrade`.") from None
    return backup_id


def _finish_record(backup_id: str, **values: Any) -> None:
    db.session.rollback()  # whatever the failed step left half done
    db.session.execute(update(Backup).where(Backup.id == backup_id)
                       .values(finished_at=utcnow(), heartbeat_at=utcnow(), **values)
                       .execution_options(synchronize_session=False))
    audit.record(f"backup.{values.get('status', 'finished')}", "backup", backup_id)
    db.session.commit()


class _Heartbeat:
    """Passes progress on, and bumps the record's heartbeat while a stage makes progress."""

    def __init__(self, backup_id: str, progress: Progress) -> None:
        self._id = backup_id
        self._progress = progress
        self._last = time.monotonic()
        self._owner = threading.get_ident()

    def begin(self, stage: str, total: int | None = None) -> None:
        self._progress.begin(stage, total)
        self._beat()

    def advance(self, amount: int) -> None:
        self._progress.advance(amount)
        # boto3 reports upload progress from its own threads; the session is this thread's.
        if threading.get_ident() == self._owner:
            self._beat()

    def end(self) -> None:
        self._progress.end()

    def _beat(self) -> None:
        if time.monotonic() - self._last < HEARTBEAT_SECONDS:
            return
        self._last = time.monotonic()
        db.session.execute(update(Backup).where(Backup.id == self._id)
                           .values(heartbeat_at=utcnow())
                           .execution_options(synchronize_session=False))
        db.session.commit()


# -- schema revisions ----------------------------------------------------------------
def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS_DIR))


def current_revision() -> str | None:
    try:
        return db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        db.session.rollback()
        return None


def _known_revision(revision: str | None) -> bool:
    if revision is None:
        return True
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


# -- backup ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Part:
    name: str
    file: str
    digest: PartDigest
    extra: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        return {"file": self.file, "size": self.digest.size, "sha256": self.digest.sha256,
                "plain_size": self.digest.plain_size, "plain_sha256": self.digest.plain_sha256,
                **self.extra}


def _dump_database(config: Config, key: BackupKey, scratch: Path, beat: _Heartbeat) -> _Part:
    backend = database.strategy(config)
    name = backend.part_file
    found: dict[str, database.DumpInfo] = {}

    def fill(out: HashingWriter) -> None:
        found["info"] = backend.dump(config, scratch, out)

    beat.begin(DATABASE, backend.size(config))
    digest = write_part(scratch / name, key, fill, beat.advance)
    beat.end()
    info = found["info"]
    return _Part(DATABASE, name, digest, {"format": info.format,
                                          "server_version": info.server_version,
                                          "tool": info.tool})


def _archive_profiles(config: Config, key: BackupKey, scratch: Path,
                      beat: _Heartbeat) -> _Part:
    name = PART_FILES[SESSIONS]
    root = config.session_data_path
    found: dict[str, profiles.ArchiveInfo] = {}

    def fill(out: HashingWriter) -> None:
        found["info"] = profiles.archive(root, out, beat.advance)

    beat.begin(SESSIONS, profiles.measure(root))
    digest = write_part(scratch / name, key, fill)
    beat.end()
    info = found["info"]
    return _Part(SESSIONS, name, digest, {"format": "tar", "files": info.files,
                                          "bytes": info.bytes, "sessions": info.sessions,
                                          "changed_while_read": info.changed_count,
                                          "changed_files": info.changed})


def create_backup(config: Config, trigger: str = "manual",
                  progress: Progress | None = None) -> Backup:
    """Take a backup now and record it; BackupError (and a failed record) on any failure."""
    storage = open_storage(config)
    backup_id = _start_record(config, storage, trigger)
    beat = _Heartbeat(backup_id, progress or NoProgress())
    started = utcnow()
    try:
        key = BackupKey(config.encryption_key)
        storage.check()
        revision = current_revision()
        with storage.staging(backup_id) as scratch:
            parts = [_dump_database(config, key, scratch, beat),
                     _archive_profiles(config, key, scratch, beat)]
            parts += _archive_media(config, key, scratch, beat)  # -- media (issue 12)
            for part in parts:
                beat.begin(f"store {part.name}", part.digest.size)
                storage.put(backup_id, part.file, scratch / part.file, beat.advance)
                beat.end()
            body = {
                "id": backup_id,
                "created_at": started.isoformat(),
                "finished_at": utcnow().isoformat(),
                "trigger": trigger,
                "app": {"name": "openwa", "version": VERSION,
                        "python": platform.python_version()},
                "database": {"backend": config.database_type, "alembic_revision": revision},
                "encryption": {"algorithm": ALGORITHM, "chunk_size": CHUNK_SIZE,
                               "key_id": key.key_id},
                "compression": "gzip",
                "parts": {part.name: part.describe() for part in parts},
            }
            data = manifest.encode(body, key)
            storage.write_manifest(backup_id, data)
    except BaseException as error:  # also Ctrl-C: the record must not stay "running"
        message = str(error) if isinstance(error, BackupError) else \
            f"{type(error).__name__}: {error}"
        log.error("backup %s failed: %s", backup_id, message)
        try:
            _finish_record(backup_id, status=FAILED, error=message[:4000])
        except SQLAlchemyError as unrecorded:  # the database is what failed: keep the cause
            log.warning("backup %s: could not record the failure: %s", backup_id, unrecorded)
        try:
            storage.delete(backup_id)
        except BackupError as cleanup:
            log.warning("backup %s: could not remove its partial parts: %s", backup_id, cleanup)
        raise
    _finish_record(backup_id, status=COMPLETED, alembic_revision=revision,
                   size_bytes=sum(part.digest.size for part in parts) + len(data),
                   manifest_sha256=_sha256(data))
    log.info("backup %s completed in %s", backup_id, storage.location(backup_id))
    return db.session.get_one(Backup, backup_id)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- retention and listing ---------------------------------------------------------------
def policy(config: Config) -> retention.Policy:
    return retention.Policy(daily=config.backup_retention_daily,
                            weekly=config.backup_retention_weekly,
                            monthly=config.backup_retention_monthly)


def apply_retention(config: Config, now: datetime | None = None) -> list[str]:
    """Delete the backups the retention policy does not keep; return their ids."""
    now = now or utcnow()
    storage = open_storage(config)
    ids = storage.list_ids()
    kept = retention.keep(((backup_id, backup_time(backup_id)) for backup_id in ids),
                          policy(config))
    doomed = [backup_id for backup_id in ids if backup_id not in kept]
    running = {record.id for record in db.session.scalars(
        select(Backup).where(Backup.status == RUNNING))}
    doomed += [backup_id for backup_id in storage.list_ids(incomplete=True)
               if backup_id not in running and backup_time(backup_id) < now - INCOMPLETE_KEPT]
    for backup_id in doomed:
        storage.delete(backup_id)
        log.info("retention: deleted backup %s", backup_id)
    db.session.execute(delete(Backup).where(Backup.id.in_(doomed)))
    db.session.execute(delete(Backup).where(Backup.status == FAILED,
                                            Backup.started_at < now - FAILED_KEPT))
    db.session.commit()
    return doomed


def sync_records(config: Config, storage: Storage | None = None) -> None:
    """Make the records agree with the storage, which is the truth about what exists.

    Needed after a restore (the restored table predates the backups taken since, and shows
    the restored backup itself as running) and after backups were removed by hand.
    """
    storage = storage or open_storage(config)
    keys = keys_of(config)
    stored = set(storage.list_ids())
    records = {record.id: record for record in db.session.scalars(select(Backup))}
    for backup_id in sorted(stored):
        record = records.get(backup_id)
        if record is not None and record.status == COMPLETED:
            continue
        try:
            data = storage.read_manifest(backup_id)
            body, _ = manifest.decode(data, keys, backup_id)
        except BackupError as error:
            log.warning("backups: cannot read backup %s: %s", backup_id, error)
            continue
        values = _record_values(body, data, storage, backup_id)
        if record is None:
            db.session.add(Backup(id=backup_id, **values))
        else:
            for field, value in values.items():
                setattr(record, field, value)
    for backup_id, record in records.items():
        if record.status == COMPLETED and backup_id not in stored:
            db.session.delete(record)
    db.session.commit()


def _record_values(body: dict[str, Any], data: bytes, storage: Storage,
                   backup_id: str) -> dict[str, Any]:
    parts = body.get("parts", {})
    return {
        "status": COMPLETED,
        "trigger": body.get("trigger", "manual"),
        "storage": storage.kind,
        "location": storage.location(backup_id),
        "database_backend": body["database"]["backend"],
        "alembic_revision": body["database"].get("alembic_revision"),
        "size_bytes": sum(int(part["size"]) for part in parts.values()) + len(data),
        "manifest_sha256": _sha256(data),
        "error": None,
        "started_at": datetime.fromisoformat(body["created_at"]),
        "heartbeat_at": datetime.fromisoformat(body["finished_at"]),
        "finished_at": datetime.fromisoformat(body["finished_at"]),
    }


def list_backups(config: Config) -> list[Backup]:
    """Every recorded backup, newest first, after reconciling the records with the storage.

    On a database without the schema (a new server about to be restored), the backups in
    the storage are listed from their manifests without being recorded.
    """
    storage = open_storage(config)
    if inspect(db.engine).has_table(Backup.__tablename__):
        if config.encryption_key:  # manifests cannot be verified without it
            sync_records(config, storage)
        return list(db.session.scalars(select(Backup).order_by(Backup.started_at.desc())))
    keys = keys_of(config)
    found = []
    for backup_id in reversed(storage.list_ids()):
        data = storage.read_manifest(backup_id)
        body, _ = manifest.decode(data, keys, backup_id)
        found.append(Backup(id=backup_id, **_record_values(body, data, storage, backup_id)))
    return found


# -- restore -------------------------------------------------------------------------
@dataclass(frozen=True)
class RestoreReport:
    backup_id: str
    created_at: str
    revision: str | None
    head: str | None
    sessions: int
    files: int
    seconds: float


def live_deployment(config: Config) -> list[str]:
    """What is running on the current database: live session hosts, sessions with leases."""
    now = utcnow()
    try:
        live = hosts.live_hosts(config, now)
        leased = db.session.scalar(
            select(func.count()).select_from(Session)
            .where(Session.lease_holder.is_not(None), Session.lease_expires_at > now)) or 0
    except DBAPIError:  # no schema yet: nothing can be running on it
        db.session.rollback()
        return []
    reasons = []
    if live:
        names = ", ".join(sorted(host.name for host in live))
        reasons.append(f"{len(live)} session host(s) running ({names})")
    if leased:
        reasons.append(f"{leased} session(s) held by a host")
    return reasons


def _refuse_if_live(config: Config, force: bool) -> None:
    reasons = live_deployment(config)
    if reasons and not force:
        raise LiveDeployment(
            "refusing to restore over a live deployment: " + "; ".join(reasons) + ". Stop the "
            "session hosts, workers, beat and API processes first (docs/runbooks.md, "
            "Restore), or pass --force to restore anyway.")
    if reasons:
        log.warning("restoring over a live deployment (--force): %s", "; ".join(reasons))


def _check_compatible(config: Config, body: dict[str, Any], backup_id: str) -> None:
    backend = body["database"]["backend"]
    if backend != config.database_type:
        raise BackupError(
            f"backup {backup_id} holds a {BACKENDS.get(backend, backend)} database, but this "
            f"deployment uses {BACKENDS[config.database_type]} (DATABASE_TYPE): restore it "
            f"into a deployment of the same kind")
    revision = body["database"].get("alembic_revision")
    if not _known_revision(revision):
        raise BackupError(
            f"backup {backup_id} has schema revision {revision}, which this version of OpenWA "
            f"({VERSION}) does not know; it was made by OpenWA {body['app']['version']}: "
            f"restore it with that version or a newer one")


def _verified(storage: Storage, backup_id: str, part: dict[str, Any], scratch: Path,
              progress: Progress, label: str) -> Path:
    """The stored part, fetched and checked against the manifest's size and sha256."""
    progress.begin(f"fetch {label}", int(part["size"]))
    path = storage.fetch(backup_id, part["file"], scratch, progress.advance)
    progress.end()
    progress.begin(f"verify {label}", int(part["size"]))
    size = path.stat().st_size
    digest = file_sha256(path, progress.advance)
    progress.end()
    if size != int(part["size"]) or digest != part["sha256"]:
        raise BackupCorrupt(
            f"backup {backup_id}: checksum mismatch in {part['file']} (sha256 {digest}, "
            f"{size} bytes; the manifest says {part['sha256']}, {part['size']} bytes): the "
            f"stored file is damaged. Nothing was changed.")
    return path


def _check_plain(backup_id: str, part: dict[str, Any], size: int, digest: str) -> None:
    if size != int(part["plain_size"]) or digest != part["plain_sha256"]:
        raise BackupCorrupt(f"backup {backup_id}: {part['file']} decrypts to content that does "
                            f"not match the manifest's checksum. Nothing was changed.")


def _prepare_database(config: Config, key: BackupKey, storage: Storage, backup_id: str,
                      part: dict[str, Any], scratch: Path, progress: Progress) -> Path:
    stored = _verified(storage, backup_id, part, scratch, progress, DATABASE)
    backend = database.strategy(config)
    plain = scratch / backend.plain_file
    progress.begin(f"decrypt {DATABASE}", int(part["size"]))
    with open_part(stored, key, part["file"], progress.advance) as reader, \
            plain.open("wb") as out:
        while data := reader.read(1024 * 1024):
            out.write(data)
    progress.end()
    _check_plain(backup_id, part, reader.size, reader.sha256)
    backend.verify(plain)
    return plain


def _prepare_profiles(key: BackupKey, storage: Storage, backup_id: str, part: dict[str, Any],
                      scratch: Path, staging: Path, progress: Progress) -> None:
    stored = _verified(storage, backup_id, part, scratch, progress, SESSIONS)
    progress.begin(f"decrypt {SESSIONS}", int(part["size"]))
    with open_part(stored, key, part["file"], progress.advance) as reader:
        profiles.extract(reader, staging)
        reader.drain()
    progress.end()
    _check_plain(backup_id, part, reader.size, reader.sha256)


def keys_of(config: Config) -> list[BackupKey]:
    """The keys that open backups: ENCRYPTION_KEY (which makes them), then the previous
    ones of a rotation (ENCRYPTION_KEY_PREVIOUS)."""
    return [BackupKey(config.encryption_key),
            *(BackupKey(previous) for previous in config.encryption_key_previous)]


def _release_connections() -> None:
    db.session.remove()
    db.engine.dispose()


def restore(config: Config, backup_id: str, force: bool = False,
            progress: Progress | None = None) -> RestoreReport:
    """Replace the database and the session profiles with a backup's.

    Everything is fetched, checked and decrypted into scratch space first; a failure
    before the database step changes nothing. ``backup_id`` may be ``latest``.
    """
    progress = progress or NoProgress()
    started = time.monotonic()
    keys = keys_of(config)
    storage = open_storage(config)
    if backup_id == "latest":
        ids = storage.list_ids()
        if not ids:
            raise BackupNotFound(f"there is no backup in {storage.describe()}")
        backup_id = ids[-1]
    body, key = manifest.decode(storage.read_manifest(backup_id), keys, backup_id)
    _check_compatible(config, body, backup_id)
    _refuse_if_live(config, force)
    parts = body["parts"]
    staging = profiles.staging_dir(config.session_data_path, backup_id)
    shutil.rmtree(staging, ignore_errors=True)  # left by an earlier attempt that failed
    with tempfile.TemporaryDirectory(prefix="openwa-restore-") as folder:
        scratch = Path(folder)
        try:
            dump = _prepare_database(config, key, storage, backup_id, parts[DATABASE], scratch,
                                     progress)
            _prepare_profiles(key, storage, backup_id, parts[SESSIONS], scratch, staging,
                              progress)
            media_staging = _prepare_media(config, key, storage, backup_id, parts, scratch,
                                           progress)  # -- media (issue 12)
            # Everything is verified. The checks took a while: is anything running now?
            _refuse_if_live(config, force)
            _release_connections()
            progress.begin(f"restore {DATABASE}")
            database.strategy(config).restore(config, dump)
            progress.end()
            progress.begin(f"restore {SESSIONS}")
            profiles.replace(config.session_data_path, staging)
            progress.end()
            _restore_media(config, media_staging)  # -- media (issue 12)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    _release_connections()
    key_cache.bump()  # the API keys are the backup's now: API processes drop their cached ones
    key_cache.bump(key_cache.SESSIONS_GENERATION_KEY)  # and the sessions
    try:
        sync_records(config, storage)
    except (BackupError, SQLAlchemyError) as error:
        db.session.rollback()
        log.warning("restore: the backup records were not reconciled: %s", error)
    heads = _scripts().get_heads()
    log.info("restored backup %s", backup_id)
    return RestoreReport(backup_id=backup_id, created_at=body["created_at"],
                         revision=body["database"].get("alembic_revision"),
                         head=heads[0] if len(heads) == 1 else None,
                         sessions=len(parts[SESSIONS].get("sessions", [])),
                         files=int(parts[SESSIONS].get("files", 0)),
                         seconds=time.monotonic() - started)


# -- media (issue 12): local media files (STORAGE_TYPE=local) are a part of their own -----------
MEDIA = "media"
MEDIA_PART_FILE = "media.tar.gz.enc"


def _archive_media(config: Config, key: BackupKey, scratch: Path, beat: _Heartbeat) -> list[_Part]:
    """The media folder as a part, when media is stored locally (a bucket keeps its own)."""
    root = config.storage_local_path
    if config.storage_type != "local" or not root.is_dir():
        return []
    found: dict[str, profiles.ArchiveInfo] = {}

    def fill(out: HashingWriter) -> None:
        found["info"] = profiles.archive(root, out, beat.advance)

    beat.begin(MEDIA, profiles.measure(root))
    digest = write_part(scratch / MEDIA_PART_FILE, key, fill)
    beat.end()
    info = found["info"]
    return [_Part(MEDIA, MEDIA_PART_FILE, digest, {"format": "tar", "files": info.files,
                                                   "bytes": info.bytes})]


def _prepare_media(config: Config, key: BackupKey, storage: Storage, backup_id: str,
                   parts: dict[str, Any], scratch: Path, progress: Progress) -> Path | None:
    """The backup's media files, verified and unpacked into scratch space (None: none)."""
    part = parts.get(MEDIA)
    if part is None or config.storage_type != "local":
        return None
    stored = _verified(storage, backup_id, part, scratch, progress, MEDIA)
    unpacked = scratch / "media-files"
    progress.begin(f"decrypt {MEDIA}", int(part["size"]))
    with open_part(stored, key, part["file"], progress.advance) as reader:
        profiles.extract(reader, unpacked)
        reader.drain()
    progress.end()
    _check_plain(backup_id, part, reader.size, reader.sha256)
    return unpacked


def _restore_media(config: Config, unpacked: Path | None) -> None:
    """Put back the files the media folder lacks. Files are named by their sha256, so one
    already there is the same file: nothing is overwritten and nothing is deleted."""
    if unpacked is None:
        return
    root = config.storage_local_path
    for path in sorted(unpacked.rglob("*")):
        if not path.is_file():
            continue
        target = root / path.relative_to(unpacked)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.move(str(path), target)


__all__ = ["BackupCorrupt", "BackupError", "BackupNotFound", "BackupRunning", "LiveDeployment",
           "RestoreReport", "WrongKey", "apply_retention", "create_backup", "list_backups",
           "live_deployment", "restore", "sync_records"]
