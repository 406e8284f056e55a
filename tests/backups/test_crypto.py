"""The encryption of parts: round trips in constant memory, and every kind of damage caught."""
from __future__ import annotations

import io
import os

import pytest

from app.backups import BackupCorrupt, BackupError
from app.backups.crypto import HEADER_SIZE, TAG_SIZE, BackupKey, DecryptingReader, EncryptingWriter

CHUNK = 1024  # small chunks, so a few kB exercise many of them


def encrypt(data: bytes, key: BackupKey, chunk: int = CHUNK, pieces: int = 7) -> bytes:
    out = io.BytesIO()
    writer = EncryptingWriter(out, key, chunk)
    step = max(1, len(data) // pieces)
    for start in range(0, len(data), step):
        writer.write(data[start:start + step])
    writer.close()
    return out.getvalue()


def decrypt(blob: bytes, key: BackupKey) -> bytes:
    return DecryptingReader(io.BytesIO(blob), key).read()


@pytest.fixture
def key() -> BackupKey:
    return BackupKey("correct horse battery staple, but random: 3q2+7w==")


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK, 5 * CHUNK + 17])
def test_round_trip_of_every_size_around_chunk_boundaries(key: BackupKey, size: int):
    data = os.urandom(size)
    blob = encrypt(data, key)
    chunks = max(1, -(-size // CHUNK))
    assert len(blob) == HEADER_SIZE + size + chunks * TAG_SIZE
    assert decrypt(blob, key) == data


def test_same_plaintext_encrypts_differently_every_time(key: BackupKey):
    assert encrypt(b"x" * 5000, key) != encrypt(b"x" * 5000, key)


def test_wrong_key_fails_authentication(key: BackupKey):
    blob = encrypt(b"secret" * 1000, key)
    with pytest.raises(BackupCorrupt, match="chunk 0 failed authentication"):
        decrypt(blob, BackupKey("another key"))


@pytest.mark.parametrize("where", ["header salt", "first chunk", "last tag"])
def test_any_flipped_bit_fails(key: BackupKey, where: str):
    blob = bytearray(encrypt(os.urandom(3 * CHUNK + 5), key))
    offset = {"header salt": HEADER_SIZE - 1, "first chunk": HEADER_SIZE + 10,
              "last tag": len(blob) - 1}[where]
    blob[offset] ^= 0x80
    with pytest.raises(BackupCorrupt, match="failed authentication"):
        decrypt(bytes(blob), key)


def test_truncation_at_a_chunk_boundary_fails(key: BackupKey):
    blob = encrypt(os.urandom(3 * CHUNK + 5), key)
    cut = HEADER_SIZE + 2 * (CHUNK + TAG_SIZE)  # two whole chunks, the rest dropped
    with pytest.raises(BackupCorrupt, match="chunk 1 failed authentication"):
        decrypt(blob[:cut], key)


def test_appended_chunk_fails(key: BackupKey):
    blob = encrypt(os.urandom(2 * CHUNK), key)
    extra = encrypt(os.urandom(CHUNK), key)[HEADER_SIZE:]
    with pytest.raises(BackupCorrupt, match="failed authentication"):
        decrypt(blob + extra, key)


def test_reordered_chunks_fail(key: BackupKey):
    blob = encrypt(os.urandom(3 * CHUNK + 5), key)
    size = CHUNK + TAG_SIZE
    header, first, second = blob[:HEADER_SIZE], blob[HEADER_SIZE:HEADER_SIZE + size], \
        blob[HEADER_SIZE + size:HEADER_SIZE + 2 * size]
    with pytest.raises(BackupCorrupt, match="chunk 0 failed authentication"):
        decrypt(header + second + first + blob[HEADER_SIZE + 2 * size:], key)


def test_not_a_part_at_all(key: BackupKey):
    with pytest.raises(BackupCorrupt, match="too short"):
        decrypt(b"short", key)
    with pytest.raises(BackupCorrupt, match="bad magic"):
        decrypt(b"PK\x03\x04" + bytes(40), key)


def test_keys_are_derived_per_purpose_and_stable(key: BackupKey):
    again = BackupKey("correct horse battery staple, but random: 3q2+7w==")
    assert again.key_id == key.key_id and len(key.key_id) == 16
    assert BackupKey("other").key_id != key.key_id
    assert key.part_key(b"a" * 16) != key.part_key(b"b" * 16)
    assert key.verify(b"manifest", key.sign(b"manifest"))
    assert not BackupKey("other").verify(b"manifest", key.sign(b"manifest"))


@pytest.mark.parametrize("secret", [None, ""])
def test_missing_secret_says_how_to_make_one(secret):
    with pytest.raises(BackupError, match="ENCRYPTION_KEY is not set.*openssl rand -base64 32"):
        BackupKey(secret)


def test_large_stream_in_constant_memory(key: BackupKey):
    """64 MiB through the default 1 MiB chunks: memory stays bounded by the chunk size."""
    import tracemalloc

    block = os.urandom(1024 * 1024)
    sink = io.BytesIO()
    tracemalloc.start()
    writer = EncryptingWriter(_Discard(sink), key)  # type: ignore[arg-type]
    for _ in range(64):
        writer.write(block)
    writer.close()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, peak


class _Discard:
    """Counts bytes instead of keeping them."""

    def __init__(self, _: io.BytesIO) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)
