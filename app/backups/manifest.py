"""The manifest: what a backup holds, with checksums, authenticated with ENCRYPTION_KEY.

It is plain JSON, so an operator can read it without the key, and it carries an
HMAC-SHA256 over its canonical form (keys sorted, no spaces) under a key derived from
ENCRYPTION_KEY, so a restore trusts its checksums only when the manifest is unaltered.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from app.backups import BackupCorrupt, WrongKey
from app.backups.crypto import BackupKey

FORMAT = "openwa-backup"
VERSION = 1


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def encode(body: dict[str, Any], key: BackupKey) -> bytes:
    """The manifest file: ``body`` plus its signature."""
    signed = {**body, "format": FORMAT, "version": VERSION}
    signed["signature"] = {"algorithm": "HMAC-SHA256", "key_id": key.key_id,
                           "value": key.sign(_canonical(signed))}
    return json.dumps(signed, indent=2, sort_keys=True).encode() + b"\n"


def decode(data: bytes, keys: Sequence[BackupKey], backup_id: str
           ) -> tuple[dict[str, Any], BackupKey]:
    """The verified manifest body and the key that made it (the current ENCRYPTION_KEY or
    one of ENCRYPTION_KEY_PREVIOUS), or BackupCorrupt / WrongKey saying what is wrong."""
    try:
        manifest = json.loads(data)
        signature = manifest.pop("signature")
        key_id, value = signature["key_id"], signature["value"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BackupCorrupt(f"backup {backup_id}: the manifest is damaged (not an OpenWA "
                            f"backup manifest)") from None
    if manifest.get("format") != FORMAT:
        raise BackupCorrupt(f"backup {backup_id}: not an OpenWA backup manifest")
    if manifest.get("version") != VERSION:
        raise BackupCorrupt(f"backup {backup_id}: manifest version {manifest.get('version')} "
                            f"is not supported by this version of OpenWA")
    key = next((candidate for candidate in keys if candidate.key_id == key_id), None)
    if key is None:
        known = ", ".join(candidate.key_id for candidate in keys)
        raise WrongKey(f"backup {backup_id} was made with another ENCRYPTION_KEY (key id "
                       f"{key_id}; the keys set here have key id {known}). Set the "
                       f"ENCRYPTION_KEY the backup was made with, or add it to "
                       f"ENCRYPTION_KEY_PREVIOUS.")
    if not key.verify(_canonical(manifest), str(value)):
        raise BackupCorrupt(f"backup {backup_id}: the manifest failed authentication: it was "
                            f"altered or damaged after the backup was made")
    if manifest.get("id") != backup_id:
        raise BackupCorrupt(f"backup {backup_id}: the manifest belongs to backup "
                            f"{manifest.get('id')}")
    return manifest, key
