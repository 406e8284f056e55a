"""API keys at request time: generating and hashing them, and authenticating a request's
key (active, not expired, from an allowed address, for an allowed session)."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from datetime import datetime

from sqlalchemy import bindparam, select

from app.config import Config
from app.errors import BadRequest, Forbidden, Unauthorized
from app.extensions import db
from app.models import ApiKey, Session, utcnow
from app.services import key_cache, key_usage
from app.services.key_cache import KeyCache

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


def authenticate(raw: str | None, remote_addr: str | None, config: Config,
                 cache: KeyCache | None = None) -> ApiKey:
    """Return the active key for ``raw`` or raise 401/403. With ``cache`` (the API
    process's, app/services/key_cache.py) an accepted key is read from it while its
    generation holds; a key it does not hold is read from the database (and a refused one
    never enters it)."""
    if not raw:
        raise Unauthorized("API key is missing")
    key_hash = hash_key(raw, config.api_key_pepper)
    if cache is not None:
        read_under = key_cache.generation()
        key = cache.get(key_hash, read_under)
        if key is None:
            key = db.session.scalar(_BY_HASH, {"key_hash": key_hash})
            if key is not None and key.is_active and not expired(key):
                cache.put(key_hash, key, read_under)
    else:
        key = db.session.scalar(_BY_HASH, {"key_hash": key_hash})
    if key is None:
        raise Unauthorized("Invalid API key")
    if not key.is_active:
        raise Unauthorized("API key has been revoked")
    now = utcnow()
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthorized("API key has expired")
    if not ip_allowed(key, remote_addr):
        raise Forbidden("API key is not allowed from this address")
    key_usage.meter().note(key.id, now)
    return key


def expired(key: ApiKey, now: datetime | None = None) -> bool:
    return key.expires_at is not None and key.expires_at <= (now or utcnow())
