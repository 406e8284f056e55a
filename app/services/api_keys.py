"""API keys: generation, hashing, authentication, scopes and the last-admin guard."""
from __future__ import annotations

import atexit
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import threading
import weakref
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy import bindparam, case, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from app.config import Config
from app.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from app.extensions import db
from app.models import ApiKey, Session, utcnow
from app.services import audit

log = logging.getLogger(__name__)

KEY_PREFIX = "owa_k1_"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_hex(32)


def hash_key(raw: str, pepper: str | None) -> str:
    if pepper:
        return hmac.new(pepper.encode(), raw.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(raw.encode()).hexdigest()


def parse_networks(values: list[str] | None) -> list[str] | None:
    """Validate IPv4/IPv6 addresses or CIDRs; return them normalised."""
    if not values:
        return None
    result = []
    for value in values:
        try:
            result.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            raise BadRequest([f"allowedIps: {value!r} is not an IP address or CIDR"]) from None
    return result


def ip_allowed(key: ApiKey, remote_addr: str | None) -> bool:
    if not key.allowed_ips:
        return True
    if not remote_addr:
        return False
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in key.allowed_ips)


def session_allowed(key: ApiKey, session: Session) -> bool:
    if not key.allowed_sessions:
        return True
    return session.id in key.allowed_sessions or session.name in key.allowed_sessions


_BY_HASH = select(ApiKey).where(ApiKey.key_hash == bindparam("key_hash"))  # built once: every request


def authenticate(raw: str | None, remote_addr: str | None, config: Config) -> ApiKey:
    """Return the active key for ``raw`` or raise 401/403."""
    if not raw:
        raise Unauthorized("API key is missing")
    key = db.session.scalar(_BY_HASH, {"key_hash": hash_key(raw, config.api_key_pepper)})
    if key is None:
        raise Unauthorized("Invalid API key")
    if not key.is_active:
        raise Unauthorized("API key has been revoked")
    now = utcnow()
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthorized("API key has expired")
    if not ip_allowed(key, remote_addr):
        raise Forbidden("API key is not allowed from this address")
    _usage_meter().note(key.id, now)
    return key


class UsageMeter:
    """``usageCount`` / ``lastUsedAt`` of the keys one process has authenticated, written
    at most once per ``FLUSH_SECONDS`` in one small transaction instead of one write and
    commit per request (every request of a key updated the same row: at 8 concurrent
    clients that row was a queue of its own). Reads of the keys flush first, so a key's
    own process always sees exact figures; others see them at most FLUSH_SECONDS late.
    """

    FLUSH_SECONDS = 1.0

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.pending: dict[str, tuple[int, datetime]] = {}
        self.timer: threading.Timer | None = None

    def note(self, key_id: str, when: datetime, count: int = 1) -> None:
        with self.lock:
            pending, last = self.pending.get(key_id, (0, when))
            self.pending[key_id] = (pending + count, max(last, when))
            if self.timer is None:
                self.timer = threading.Timer(self.FLUSH_SECONDS, self._flush_later)
                self.timer.daemon = True
                self.timer.start()

    def _flush_later(self) -> None:
        with self.lock:
            self.timer = None
        with self.app.app_context():
            try:
                self.flush()
            finally:
                db.session.remove()

    def flush(self, final: bool = False) -> None:
        """Write what is pending (in the caller's app context; commits its session).
        ``final``: the process is exiting; a failure is not retried."""
        with self.lock:
            batch, self.pending = self.pending, {}
        if not batch:
            return
        try:
            for key_id, (count, last) in batch.items():
                newer = or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < last)
                db.session.execute(
                    update(ApiKey).where(ApiKey.id == key_id)
                    .values(usage_count=ApiKey.usage_count + count,
                            last_used_at=case((newer, last), else_=ApiKey.last_used_at))
                    .execution_options(synchronize_session=False))
            db.session.commit()
        except SQLAlchemyError as error:
            db.session.rollback()
            if final:
                return
            log.warning("could not record API key usage (kept for the next try): %s",
                        type(error).__name__)
            for key_id, (count, last) in batch.items():
                self.note(key_id, last, count)

    def reset_after_fork(self) -> None:
        self.lock = threading.Lock()
        self.pending, self.timer = {}, None


_METERS: weakref.WeakSet[UsageMeter] = weakref.WeakSet()
_METERS_LOCK = threading.Lock()


def _usage_meter() -> UsageMeter:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _METERS_LOCK:  # one per app, also when its first requests arrive together
        meter = app.extensions.get("openwa_key_usage")
        if meter is None:
            meter = app.extensions["openwa_key_usage"] = UsageMeter(app)
            _METERS.add(meter)
    return meter


def flush_usage() -> None:
    """Write this process's pending key usage now (before the keys are read)."""
    meter = current_app.extensions.get("openwa_key_usage")
    if meter is not None:
        meter.flush()


@atexit.register
def _flush_at_exit() -> None:
    for meter in list(_METERS):
        try:
            with meter.app.app_context():
                meter.flush(final=True)
                db.session.remove()
        except Exception:  # noqa: BLE001 - exiting; the database may be gone
            pass


def _reset_meters_after_fork() -> None:
    for meter in list(_METERS):
        meter.reset_after_fork()


os.register_at_fork(after_in_child=_reset_meters_after_fork)


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


def expired(key: ApiKey, now: datetime | None = None) -> bool:
    return key.expires_at is not None and key.expires_at <= (now or utcnow())
