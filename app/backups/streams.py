"""The pipeline of a part: plaintext → sha256 → gzip → encryption → sha256 → file, and back.

Everything streams, so a part of any size needs constant memory. Two digests are kept:
of the stored (encrypted) bytes, checked before anything is decrypted, and of the
plaintext, checked after decryption as an end-to-end check of the whole pipeline.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.backups import BackupCorrupt
from app.backups.crypto import BackupKey, DecryptingReader, EncryptingWriter

COPY_BUFFER = 1024 * 1024
GZIP_LEVEL = 6

Advance = Callable[[int], None]


def _ignore(_: int) -> None:
    pass


class HashingWriter:
    """Counts and hashes what passes through to ``out``."""

    def __init__(self, out: BinaryIO | EncryptingWriter | gzip.GzipFile,
                 advance: Advance = _ignore) -> None:
        self._out = out
        self._hash = hashlib.sha256()
        self._advance = advance
        self.size = 0

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self._hash.update(data)
        self.size += len(data)
        self._advance(len(data))
        return len(data)

    def flush(self) -> None:
        self._out.flush()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


class HashingReader(io.RawIOBase):
    """Counts and hashes what is read from ``src``."""

    def __init__(self, src: BinaryIO | io.RawIOBase | gzip.GzipFile,
                 advance: Advance = _ignore) -> None:
        super().__init__()
        self._src = src
        self._hash = hashlib.sha256()
        self._advance = advance
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._src.read(len(buffer))
        count = len(data)
        buffer[:count] = data
        self._hash.update(data)
        self.size += count
        self._advance(count)
        return count

    def drain(self) -> None:
        while self.read(COPY_BUFFER):
            pass

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


@dataclass(frozen=True)
class PartDigest:
    """Sizes and sha256 digests of a part: as stored, and of its plaintext."""

    size: int
    sha256: str
    plain_size: int
    plain_sha256: str


def write_part(path: Path, key: BackupKey, fill: Callable[[HashingWriter], None],
               advance: Advance = _ignore) -> PartDigest:
    """Create ``path`` with what ``fill`` writes, gzipped and encrypted."""
    with path.open("wb") as raw:
        stored = HashingWriter(raw)
        cipher = EncryptingWriter(stored, key)  # type: ignore[arg-type]
        gz = gzip.GzipFile(filename="", fileobj=cipher, mode="wb",
                           compresslevel=GZIP_LEVEL, mtime=0)
        plain = HashingWriter(gz, advance)
        fill(plain)
        gz.close()
        cipher.close()
    return PartDigest(stored.size, stored.sha256, plain.size, plain.sha256)


def copy_into(src: BinaryIO, out: HashingWriter) -> None:
    while data := src.read(COPY_BUFFER):
        out.write(data)


@contextmanager
def open_part(path: Path, key: BackupKey, name: str,
              advance: Advance = _ignore) -> Iterator[HashingReader]:
    """The plaintext of a stored part, authenticated chunk by chunk as it is read."""
    with path.open("rb") as raw:
        counted = HashingReader(raw, advance)
        cipher = DecryptingReader(counted, key, name)  # type: ignore[arg-type]
        with gzip.GzipFile(fileobj=cipher, mode="rb") as gz:
            try:
                yield HashingReader(gz)
            except (EOFError, gzip.BadGzipFile, zlib.error) as error:
                raise BackupCorrupt(
                    f"{name}: not a valid gzip stream after decryption: {error}") from None


def file_sha256(path: Path, advance: Advance = _ignore) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while data := handle.read(COPY_BUFFER):
            digest.update(data)
            advance(len(data))
    return digest.hexdigest()
