"""Where media bytes live: STORAGE_TYPE=local (a folder every host shares) or s3/minio (a
bucket). Files are content-addressed: the key is the sha256 of the bytes, so a file sent or
received many times is stored once, and every host finds it under the same name.

Files go in and out as files or streams, never as one big ``bytes``: a 50 MB video costs a
few chunks of memory, not 50 MB.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from app.config import Config
from app.s3 import s3_client

CHUNK = 1024 * 1024
SHA256 = re.compile(r"^[0-9a-f]{64}$")
S3_PREFIX = "media/"


class StorageError(Exception):
    """The store cannot be used (no bucket, no access, disk full): the message says which."""


class MediaMissing(StorageError):
    """No file under that sha256 (pruned, or never stored)."""


def _check(sha256: str) -> str:
    if not SHA256.match(sha256):
        raise MediaMissing(f"{sha256!r} is not a sha256")
    return sha256


class MediaStorage(ABC):
    kind: str

    @abstractmethod
    def put(self, sha256: str, path: Path, mimetype: str) -> None:
        """Store the file ``path`` under ``sha256`` (a no-op when it is there already)."""

    @abstractmethod
    def exists(self, sha256: str) -> bool:
        """Whether the file is stored."""

    @abstractmethod
    def open(self, sha256: str) -> BinaryIO:
        """A binary stream of the file (close it); MediaMissing when there is none."""

    @abstractmethod
    def delete(self, sha256: str) -> None:
        """Remove the file (no error when it is gone)."""

    @contextlib.contextmanager
    def local_file(self, sha256: str) -> Iterator[Path]:
        """A local path to the file for as long as the block runs (a download from a bucket)."""
        with tempfile.TemporaryDirectory(prefix="openwa-media-") as scratch:
            dest = Path(scratch) / sha256
            with self.open(sha256) as src, dest.open("wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
            yield dest


class LocalMediaStorage(MediaStorage):
    """STORAGE_LOCAL_PATH/ab/<sha256>: a folder every host of a deployment mounts."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        return self.root / _check(sha256)[:2] / sha256

    def put(self, sha256: str, path: Path, mimetype: str) -> None:
        target = self.path(sha256)
        if target.is_file():
            return
        try:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            temp = target.parent / f".{sha256}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
            shutil.copyfile(path, temp)
            os.chmod(temp, 0o600)
            os.replace(temp, target)  # readers see the whole file or none
        except OSError as error:
            with contextlib.suppress(UnboundLocalError, OSError):
                temp.unlink(missing_ok=True)
            raise StorageError(f"cannot store media in {self.root}: {error}") from None

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        try:
            return self.path(sha256).open("rb")
        except FileNotFoundError:
            raise MediaMissing(f"media {sha256} is not stored") from None

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    @contextlib.contextmanager
    def local_file(self, sha256: str) -> Iterator[Path]:
        path = self.path(sha256)  # read in place: no copy
        if not path.is_file():
            raise MediaMissing(f"media {sha256} is not stored")
        yield path


class S3MediaStorage(MediaStorage):
    """s3://STORAGE_S3_BUCKET/media/<sha256>, with the client settings backups use."""

    kind = "s3"

    def __init__(self, config: Config) -> None:
        if not config.storage_s3_bucket:
            raise StorageError(f"STORAGE_TYPE={config.storage_type} needs STORAGE_S3_BUCKET")
        self.bucket = config.storage_s3_bucket
        self.client = s3_client(config, config.storage_type)
        self.transfer = TransferConfig(multipart_threshold=16 * 1024 * 1024,
                                       multipart_chunksize=8 * 1024 * 1024, max_concurrency=2)

    def _key(self, sha256: str) -> str:
        return S3_PREFIX + _check(sha256)

    def put(self, sha256: str, path: Path, mimetype: str) -> None:
        if self.exists(sha256):
            return
        try:
            self.client.upload_file(str(path), self.bucket, self._key(sha256),
                                    ExtraArgs={"ContentType": mimetype}, Config=self.transfer)
        except (ClientError, BotoCoreError) as error:
            raise StorageError(f"S3 (s3://{self.bucket}): cannot store media: {error}") from None

    def exists(self, sha256: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(sha256))
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StorageError(f"S3 (s3://{self.bucket}): {error}") from None
        except BotoCoreError as error:
            raise StorageError(f"S3 (s3://{self.bucket}): {error}") from None
        return True

    def open(self, sha256: str) -> BinaryIO:
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=self._key(sha256))
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                raise MediaMissing(f"media {sha256} is not stored") from None
            raise StorageError(f"S3 (s3://{self.bucket}): {error}") from None
        except BotoCoreError as error:
            raise StorageError(f"S3 (s3://{self.bucket}): {error}") from None
        return reply["Body"]  # type: ignore[no-any-return]

    def delete(self, sha256: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(sha256))
        except (ClientError, BotoCoreError) as error:
            raise StorageError(f"S3 (s3://{self.bucket}): cannot delete media: {error}") from None


_opened: dict[tuple[str, str], MediaStorage] = {}


def open_storage(config: Config) -> MediaStorage:
    """The store STORAGE_TYPE names (one per process and setting: boto3 clients are costly)."""
    where = str(config.storage_local_path) if config.storage_type == "local" else (
        f"{config.storage_s3_endpoint}|{config.storage_s3_bucket}")
    key = (config.storage_type, where)
    store = _opened.get(key)
    if store is None:
        store = (LocalMediaStorage(config.storage_local_path) if config.storage_type == "local"
                 else S3MediaStorage(config))
        _opened[key] = store
    return store
