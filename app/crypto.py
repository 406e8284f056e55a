"""Authenticated encryption of secrets at rest (webhook secrets and headers).

AES-256-GCM with a key derived by HKDF-SHA256 from ENCRYPTION_KEY. A token is
``v1:<key id>:<base64(nonce | ciphertext)>``; the key id (a fingerprint of the derived key)
says which key made it, so after a rotation tokens of ENCRYPTION_KEY_PREVIOUS still open
until `openwa secrets reencrypt` has rewritten them. Without ENCRYPTION_KEY a random key
is generated into DATA_PATH/.encryption-key (0600): fine for one machine, and logged as a
warning, because every process of a deployment must share the key.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.config import Config

log = logging.getLogger(__name__)
VERSION = "v1"


class DecryptionError(ValueError):
    """No configured key opens this token (wrong key, or the data was tampered with)."""


def derive(material: str, purpose: bytes = b"openwa secrets v1") -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"openwa", info=purpose).derive(
        material.encode())


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def _generated_key(config: Config) -> str:
    path: Path = config.data_dir / ".encryption-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
        log.warning("ENCRYPTION_KEY is not set: generated one in %s; set ENCRYPTION_KEY for "
                    "any deployment with more than one machine", path)
    return path.read_text().strip()


class Box:
    """Encrypts with the current key; decrypts with the current or a previous one."""

    def __init__(self, current: str, previous: list[str] | None = None) -> None:
        self.key = derive(current)
        self.keys = {key_id(k): k for k in [self.key, *(derive(p) for p in previous or [])]}

    @classmethod
    def from_config(cls, config: Config) -> "Box":
        return cls(config.encryption_key or _generated_key(config), config.encryption_key_previous)

    def encrypt(self, plaintext: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(self.key).encrypt(nonce, plaintext.encode(), VERSION.encode())
        return f"{VERSION}:{key_id(self.key)}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str) -> str:
        try:
            version, kid, payload = token.split(":", 2)
            raw = base64.b64decode(payload)
            key = self.keys[kid]
        except (ValueError, KeyError):
            raise DecryptionError("no configured key opens this secret") from None
        if version != VERSION:
            raise DecryptionError(f"unknown secret format {version!r}")
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], VERSION.encode()).decode()
        except InvalidTag:
            raise DecryptionError("secret failed authentication") from None

    def is_current(self, token: str) -> bool:
        return token.split(":", 2)[1:2] == [key_id(self.key)]
