"""Authenticated streaming encryption of backup parts, with keys derived from ENCRYPTION_KEY.

A part is encrypted with AES-256-GCM in chunks of 1 MiB, so a part of any size is
encrypted and decrypted in constant memory, and every chunk is authenticated before one
byte of its plaintext is released. The layout (integers big-endian)::

    header  magic "OWABK" | version 1 (1 byte) | chunk size (4) | salt (16)      26 bytes
    chunk   AES-GCM(part key, nonce = chunk number (8) | last flag (4),
                    plaintext of chunk size bytes (the last one: 0..chunk size),
                    associated data = the header)                       + 16-byte tag

The part key is HKDF-SHA256(ENCRYPTION_KEY, salt, "openwa backup part v1"): a new random
salt gives every part its own key, so chunk numbers never repeat a nonce under one key.
The last chunk, and only it, carries the flag, so truncating a part at a chunk boundary
or appending to it fails authentication too; the header is the associated data of every
chunk, so changing the chunk size or the salt does as well. This is the STREAM
construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015), as used by age and Tink.

The same secret also gives, through HKDF with other labels, the key that authenticates
manifests and a short key id recorded in them, which tells "another ENCRYPTION_KEY"
apart from "a damaged file".
"""
from __future__ import annotations

import hashlib
import hmac
import io
import os
import struct
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.backups import BackupCorrupt, BackupError

MAGIC = b"OWABK"
VERSION = 1
CHUNK_SIZE = 1024 * 1024
TAG_SIZE = 16
SALT_SIZE = 16
_HEADER = struct.Struct(">5sBI16s")
HEADER_SIZE = _HEADER.size
_MAX_CHUNK = 64 * 1024 * 1024
ALGORITHM = "AES-256-GCM, 1 MiB chunks (STREAM), key HKDF-SHA256(ENCRYPTION_KEY, salt)"

MISSING_KEY = ("ENCRYPTION_KEY is not set: backups are always encrypted. Generate one with "
               "`openssl rand -base64 32`, give the same value to every OpenWA process, and keep "
               "a copy away from this server: without it no backup can be restored.")


def _hkdf(secret: bytes, salt: bytes | None, label: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=label).derive(secret)


class BackupKey:
    """The keys one ENCRYPTION_KEY gives: part keys, the manifest key and the key id."""

    def __init__(self, secret: str | None) -> None:
        if not secret:
            raise BackupError(MISSING_KEY)
        self._secret = secret.encode()
        self.key_id = _hkdf(self._secret, None, b"openwa backup key id v1", 8).hex()
        self._manifest_key = _hkdf(self._secret, None, b"openwa backup manifest v1")

    def part_key(self, salt: bytes) -> bytes:
        return _hkdf(self._secret, salt, b"openwa backup part v1")

    def sign(self, data: bytes) -> str:
        return hmac.new(self._manifest_key, data, hashlib.sha256).hexdigest()

    def verify(self, data: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign(data), signature)


def _nonce(counter: int, last: bool) -> bytes:
    return struct.pack(">QI", counter, 1 if last else 0)


class EncryptingWriter:
    """A write-only file: what is written reaches ``out`` encrypted, chunk by chunk.

    ``close()`` writes the last chunk (and must be called); ``out`` stays open.
    """

    def __init__(self, out: BinaryIO, key: BackupKey, chunk_size: int = CHUNK_SIZE) -> None:
        if not 0 < chunk_size <= _MAX_CHUNK:
            raise ValueError(f"chunk size {chunk_size} out of range")
        salt = os.urandom(SALT_SIZE)
        self._header = _HEADER.pack(MAGIC, VERSION, chunk_size, salt)
        self._aead = AESGCM(key.part_key(salt))
        self._out = out
        self._chunk_size = chunk_size
        self._buffer = bytearray()
        self._counter = 0
        self.closed = False
        out.write(self._header)

    def write(self, data: bytes) -> int:
        if self.closed:
            raise ValueError("write to a closed EncryptingWriter")
        self._buffer += data
        # Keep at least one byte back: only close() knows which chunk is the last.
        while len(self._buffer) > self._chunk_size:
            self._emit(bytes(self._buffer[:self._chunk_size]), last=False)
            del self._buffer[:self._chunk_size]
        return len(data)

    def flush(self) -> None:
        """Nothing to do: a chunk is written once it is full, the last one on close()."""

    def close(self) -> None:
        if not self.closed:
            self._emit(bytes(self._buffer), last=True)
            self._buffer.clear()
            self.closed = True

    def _emit(self, plaintext: bytes, last: bool) -> None:
        self._out.write(self._aead.encrypt(_nonce(self._counter, last), plaintext, self._header))
        self._counter += 1


class DecryptingReader(io.RawIOBase):
    """A read-only file over an encrypted part: yields only authenticated plaintext.

    Raises :class:`BackupCorrupt` on a damaged, truncated or extended part, or one
    encrypted with another key (GCM cannot tell those apart; the manifest's key id can).
    """

    def __init__(self, src: BinaryIO, key: BackupKey, name: str = "part") -> None:
        super().__init__()
        self._src = src
        self._name = name
        header = _read_exact(src, HEADER_SIZE)
        if len(header) < HEADER_SIZE:
            raise BackupCorrupt(f"{name}: too short to be an OpenWA backup part")
        magic, version, chunk_size, salt = _HEADER.unpack(header)
        if magic != MAGIC:
            raise BackupCorrupt(f"{name}: not an OpenWA backup part (bad magic)")
        if version != VERSION:
            raise BackupCorrupt(f"{name}: encryption format version {version} is not supported")
        if not 0 < chunk_size <= _MAX_CHUNK:
            raise BackupCorrupt(f"{name}: bad chunk size {chunk_size}")
        self._header = header
        self._aead = AESGCM(key.part_key(salt))
        self._chunk_size = chunk_size
        self._pending = b""  # the byte read ahead to learn whether a chunk is the last
        self._plain = memoryview(b"")
        self._counter = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._plain and not self._done:
            self._next_chunk()
        count = min(len(buffer), len(self._plain))
        buffer[:count] = self._plain[:count]
        self._plain = self._plain[count:]
        return count

    def _next_chunk(self) -> None:
        want = self._chunk_size + TAG_SIZE
        data = self._pending + _read_exact(self._src, want - len(self._pending))
        if len(data) < TAG_SIZE:
            raise BackupCorrupt(f"{self._name}: truncated (chunk {self._counter} is incomplete)")
        self._pending = self._src.read(1) if len(data) == want else b""
        last = not self._pending
        try:
            plain = self._aead.decrypt(_nonce(self._counter, last), data, self._header)
        except InvalidTag:
            raise BackupCorrupt(
                f"{self._name}: chunk {self._counter} failed authentication: the file is "
                f"damaged or truncated, or was encrypted with another key") from None
        self._counter += 1
        self._plain = memoryview(plain)
        self._done = last


def _read_exact(src: BinaryIO, size: int) -> bytes:
    parts: list[bytes] = []
    while size > 0:
        data = src.read(size)
        if not data:
            break
        parts.append(data)
        size -= len(data)
    return b"".join(parts)
