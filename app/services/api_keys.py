"""API keys as records: create, update, revoke, rotate and delete them with the
last-admin guard, and seed the first admin key. Authentication is in ``key_auth``, the
usage meter in ``key_usage``."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select

from app.config import Config
from app.errors import BadRequest, Conflict, NotFound
from app.extensions import db
from app.models import ApiKey, utcnow
from app.services import audit
from app.services.key_auth import generate_key, hash_key, parse_networks
from app.services.key_usage import flush_usage

log = logging.getLogger(__name__)


def _active_admins(exclude: str | None = None) -> int:
    # An expired admin key cannot log in, so it does not count as one that remains.
    query = select(func.count()).select_from(ApiKey).where(
        ApiKey.role == "admin", ApiKey.is_active.is_(True),
        or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > utcnow()))
    if exclude:
        query = query.where(ApiKey.id != exclude)
    return db.session.scalar(query) or 0


def get(key_id: str) -> ApiKey:
    flush_usage()
    key = db.session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"API key '{key_id}' not found")
    return key


def list_keys() -> list[ApiKey]:
    flush_usage()
    return list(db.session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


def create(data: dict[str, Any], config: Config) -> tuple[ApiKey, str]:
    raw = generate_key()
    key = ApiKey(
        name=data["name"], role=data.get("role") or "operator",
        allowed_sessions=data.get("allowed_sessions") or None,
        allowed_ips=parse_networks(data.get("allowed_ips")),
        expires_at=data.get("expires_at"),
        allowed_chats=sorted(set(data.get("allowed_chats") or [])) or None,  # issue 13.7
        key_hash=hash_key(raw, config.api_key_pepper), key_prefix=raw[:12],
    )
    if key.expires_at is not None and key.expires_at <= utcnow():
        raise BadRequest(["expiresAt: must be in the future"])
    db.session.add(key)
    db.session.flush()
    audit.record("apikey.created", "apikey", key.id, name=key.name, role=key.role)
    db.session.commit()
    return key, raw


def _guard_last_admin(key: ApiKey, losing_admin: bool) -> None:
    if losing_admin and key.role == "admin" and key.is_active and _active_admins(exclude=key.id) == 0:
        raise Conflict("Cannot remove the last active admin key", code="LAST_ADMIN_KEY")


def update_key(key: ApiKey, data: dict[str, Any]) -> ApiKey:
    if data.get("expires_at") is not None and data["expires_at"] <= utcnow():
        raise BadRequest(["expiresAt: must be in the future"])
    new_role = data.get("role", key.role)
    new_active = data.get("is_active", key.is_active)
    _guard_last_admin(key, losing_admin=(new_role != "admin" or not new_active))
    if "name" in data:
        key.name = data["name"]
    key.role = new_role
    key.is_active = new_active
    if "allowed_sessions" in data:
        key.allowed_sessions = data["allowed_sessions"] or None
    if "allowed_ips" in data:
        key.allowed_ips = parse_networks(data["allowed_ips"])
    if "expires_at" in data:
        key.expires_at = data["expires_at"]
    if "allowed_chats" in data:  # issue 13.7
        key.allowed_chats = sorted(set(data["allowed_chats"] or [])) or None
    audit.record("apikey.updated", "apikey", key.id, fields=sorted(data))
    db.session.commit()
    return key


def revoke(key: ApiKey) -> ApiKey:
    _guard_last_admin(key, losing_admin=True)
    key.is_active = False
    audit.record("apikey.revoked", "apikey", key.id, name=key.name)
    db.session.commit()
    return key


def delete(key: ApiKey) -> None:
    _guard_last_admin(key, losing_admin=True)
    audit.record("apikey.deleted", "apikey", key.id, name=key.name)
    db.session.delete(key)
    db.session.commit()


def rotate(key: ApiKey, config: Config) -> tuple[ApiKey, str]:
    raw = generate_key()
    key.key_hash = hash_key(raw, config.api_key_pepper)
    key.key_prefix = raw[:12]
    audit.record("apikey.rotated", "apikey", key.id, name=key.name)
    db.session.commit()
    return key, raw


def key_file(config: Config) -> Path:
    return config.data_dir / ".api-key"


def bootstrap_admin(config: Config) -> str | None:
    """Seed one admin key when there are none. Return the plaintext if we made one.

    API_KEY_MASTER is used verbatim; otherwise a fresh key is written to
    ``data/.api-key`` (mode 0600) and logged once.
    """
    if db.session.scalar(select(func.count()).select_from(ApiKey)):
        return None
    raw = config.api_key_master or generate_key()
    db.session.add(ApiKey(name="bootstrap admin", role="admin",
                          key_hash=hash_key(raw, config.api_key_pepper), key_prefix=raw[:12]))
    db.session.commit()
    if config.api_key_master:
        log.info("seeded the admin API key from API_KEY_MASTER")
        return None
    path = key_file(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(raw + "\n")
    os.chmod(path, 0o600)
    # Printed once, on purpose: it is the only way to learn a generated key.
    print(f"OpenWA admin API key (also in {path}): {raw}", flush=True)
    return raw
