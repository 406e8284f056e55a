"""Where backups live: a local directory or an S3 bucket (AWS, MinIO, any S3 API).

A backup is a folder (or key prefix) named by its id holding its encrypted parts and
``manifest.json``. The manifest is written last, so a backup without one is incomplete
and is neither listed nor restored.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from app.backups import BackupError, BackupNotFound
from app.config import Config
from app.s3 import s3_client

MANIFEST = "manifest.json"
# Ids are generated as 20260102T020000Z-1a2b3c; anything else in the storage is not ours.
BACKUP_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")

Advance = Callable[[int], None]


def _ignore(_: int) -> None:
    pass


def check_id(backup_id: str) -> str:
    if not BACKUP_ID.match(backup_id):
        raise BackupNotFound(f"{backup_id!r} is not a backup id (like 20260102T020000Z-1a2b3c)")
    return backup_id


class Storage(ABC):
    """The operations backups need from a store."""

    kind: str

    @abstractmethod
    def describe(self) -> str:
        """Where the backups are, for people: a path or s3://bucket/prefix."""

    @abstractmethod
    def location(self, backup_id: str) -> str:
        """Where one backup is."""

    @abstractmethod
    def check(self) -> None:
        """Raise BackupError when the store cannot be used (missing bucket, no access)."""

    @abstractmethod
    def list_ids(self, incomplete: bool = False) -> list[str]:
        """Ids of the complete backups (with a manifest), oldest first; ``incomplete``:
        those without one (in progress, or left by a process that died)."""

    @abstractmethod
    def read_manifest(self, backup_id: str) -> bytes:
        """The manifest's bytes; BackupNotFound when there is none."""

    @abstractmethod
    def write_manifest(self, backup_id: str, data: bytes) -> None:
        """Store the manifest: the backup is complete from now on."""

    @abstractmethod
    def put(self, backup_id: str, name: str, path: Path, advance: Advance = _ignore) -> None:
        """Store the file ``path`` as part ``name`` (the file may be moved away)."""

    @abstractmethod
    def get(self, backup_id: str, name: str, dest: Path, advance: Advance = _ignore) -> None:
        """Fetch part ``name`` into the file ``dest``."""

    @abstractmethod
    def delete(self, backup_id: str) -> None:
        """Remove a backup and all its parts (no error if it is gone)."""

    def fetch(self, backup_id: str, name: str, scratch: Path, advance: Advance = _ignore) -> Path:
        """A local file with part ``name``, fetched into ``scratch``; read it, never change it."""
        dest = scratch / name
        self.get(backup_id, name, dest, advance)
        return dest

    @contextmanager
    def staging(self, backup_id: str) -> Iterator[Path]:
        """A private directory for the parts being made, removed afterwards."""
        path = Path(tempfile.mkdtemp(prefix=f"openwa-backup-{backup_id}-"))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)


class LocalStorage(Storage):
    """BACKUP_PATH/<id>/…, readable by the owner only."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return str(self.root.resolve())

    def location(self, backup_id: str) -> str:
        return str((self.root / backup_id).resolve())

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as error:
            raise BackupError(f"cannot create BACKUP_PATH {self.root}: {error}") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise BackupError(f"BACKUP_PATH {self.root} is not writable by this user")

    def list_ids(self, incomplete: bool = False) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if BACKUP_ID.match(p.name) and (p / MANIFEST).is_file() != incomplete)

    def read_manifest(self, backup_id: str) -> bytes:
        path = self.root / check_id(backup_id) / MANIFEST
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise BackupNotFound(f"no backup {backup_id} in {self.describe()}") from None

    def write_manifest(self, backup_id: str, data: bytes) -> None:
        folder = self._folder(backup_id)
        tmp = folder / f".{MANIFEST}.tmp"
        tmp.write_bytes(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, folder / MANIFEST)

    def put(self, backup_id: str, name: str, path: Path, advance: Advance = _ignore) -> None:
        target = self._folder(backup_id) / name
        size = path.stat().st_size
        shutil.move(str(path), target)  # a rename when staging is on the same file system
        os.chmod(target, 0o600)
        advance(size)

    def get(self, backup_id: str, name: str, dest: Path, advance: Advance = _ignore) -> None:
        source = self.root / check_id(backup_id) / name
        if not source.is_file():
            raise BackupNotFound(f"backup {backup_id} has no part {name} in {self.describe()}")
        with source.open("rb") as src, dest.open("wb") as out:
            while data := src.read(1024 * 1024):
                out.write(data)
                advance(len(data))

    def delete(self, backup_id: str) -> None:
        shutil.rmtree(self.root / check_id(backup_id), ignore_errors=True)

    def fetch(self, backup_id: str, name: str, scratch: Path, advance: Advance = _ignore) -> Path:
        # Read in place: no copy of a part that is already on this machine.
        path = self.root / check_id(backup_id) / name
        if not path.is_file():
            raise BackupNotFound(f"backup {backup_id} has no part {name} in {self.describe()}")
        advance(path.stat().st_size)
        return path

    @contextmanager
    def staging(self, backup_id: str) -> Iterator[Path]:
        # Inside BACKUP_PATH, so storing a part is a rename, not a second copy.
        self.check()
        path = Path(tempfile.mkdtemp(prefix=f".staging-{backup_id}-", dir=self.root))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def _folder(self, backup_id: str) -> Path:
        folder = self.root / check_id(backup_id)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder


class S3Storage(Storage):
    """s3://BACKUP_S3_BUCKET/BACKUP_S3_PREFIX<id>/…, through boto3 (multipart for big parts)."""

    kind = "s3"

    def __init__(self, config: Config) -> None:
        if not config.backup_s3_bucket:
            raise BackupError(f"backups go to S3 (BACKUP_STORAGE={config.backup_storage}) but no "
                              f"bucket is set: set BACKUP_S3_BUCKET (or STORAGE_S3_BUCKET)")
        self.bucket = config.backup_s3_bucket
        self.prefix = config.backup_s3_prefix
        self.client = s3_client(config, config.backup_storage)
        self.transfer = TransferConfig(multipart_threshold=64 * 1024 * 1024,
                                       multipart_chunksize=64 * 1024 * 1024, max_concurrency=4)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def location(self, backup_id: str) -> str:
        return f"s3://{self.bucket}/{self._key(backup_id, '')}"

    def check(self) -> None:
        with self._errors("open the bucket"):
            self.client.head_bucket(Bucket=self.bucket)

    def list_ids(self, incomplete: bool = False) -> list[str]:
        seen: set[str] = set()
        complete: set[str] = set()
        with self._errors("list the backups"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    backup_id, _, name = item["Key"][len(self.prefix):].partition("/")
                    if BACKUP_ID.match(backup_id):
                        seen.add(backup_id)
                        if name == MANIFEST:
                            complete.add(backup_id)
        return sorted(seen - complete if incomplete else complete)

    def read_manifest(self, backup_id: str) -> bytes:
        key = self._key(check_id(backup_id), MANIFEST)
        with self._errors(f"read the manifest of {backup_id}",
                          missing=f"no backup {backup_id} in {self.describe()}"):
            return self.client.get_object(  # type: ignore[no-any-return]
                Bucket=self.bucket, Key=key)["Body"].read()

    def write_manifest(self, backup_id: str, data: bytes) -> None:
        with self._errors("write the manifest"):
            self.client.put_object(Bucket=self.bucket, Key=self._key(backup_id, MANIFEST),
                                   Body=data, ContentType="application/json")

    def put(self, backup_id: str, name: str, path: Path, advance: Advance = _ignore) -> None:
        with self._errors(f"upload {name}"):
            self.client.upload_file(str(path), self.bucket, self._key(backup_id, name),
                                    Callback=advance, Config=self.transfer)

    def get(self, backup_id: str, name: str, dest: Path, advance: Advance = _ignore) -> None:
        key = self._key(check_id(backup_id), name)
        with self._errors(f"download {name} of {backup_id}",
                          missing=f"backup {backup_id} has no part {name} in {self.describe()}"):
            self.client.download_file(self.bucket, key, str(dest), Callback=advance,
                                      Config=self.transfer)

    def delete(self, backup_id: str) -> None:
        prefix = self._key(check_id(backup_id), "")
        with self._errors(f"delete {backup_id}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(Bucket=self.bucket,
                                               Delete={"Objects": keys, "Quiet": True})

    def _key(self, backup_id: str, name: str) -> str:
        return f"{self.prefix}{backup_id}/{name}"

    @contextmanager
    def _errors(self, action: str, missing: str | None = None) -> Iterator[None]:
        """botocore's exceptions as a BackupError that says what failed and where."""
        try:
            yield
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if missing and code in ("NoSuchKey", "404", "NotFound"):
                raise BackupNotFound(missing) from None
            raise BackupError(f"S3 ({self.describe()}): cannot {action}: {error}") from None
        except BotoCoreError as error:
            raise BackupError(f"S3 ({self.describe()}): cannot {action}: {error}") from None


def open_storage(config: Config) -> Storage:
    """The store BACKUP_STORAGE (default STORAGE_TYPE) names: MinIO is S3 to boto3."""
    if config.backup_storage in ("s3", "minio"):
        return S3Storage(config)
    return LocalStorage(config.backup_path)


__all__ = ["BACKUP_ID", "MANIFEST", "LocalStorage", "S3Storage", "Storage", "check_id",
           "open_storage"]
