"""Authentication and authorisation for views.

``X-API-Key`` wins over ``Authorization: Bearer``; never a query parameter. Scope checks
(allowed IPs, allowed sessions) run before the role check.
"""
from __future__ import annotations

import copy
import functools
import ipaddress
from typing import Any, Callable, TypeVar, cast

from flask import current_app, g, request
from sqlalchemy.exc import DBAPIError

from app.config import settings
from app.errors import Forbidden, NotFound, Unauthorized
from app.extensions import db
from app.models import ApiKey, Session
from app.services import audit, key_auth, key_cache, session_cache
from app.services import sessions as session_service

F = TypeVar("F", bound=Callable[..., Any])


def presented_key() -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key.strip()
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None


def client_address() -> str | None:
    """The client's address: the peer, or, when the peer is in TRUSTED_PROXIES, the
    right-most X-Forwarded-For hop that is not itself a trusted proxy."""
    peer = request.remote_addr
    trusted = [ipaddress.ip_network(n) for n in settings().trusted_proxies]

    def is_trusted(value: str | None) -> bool:
        try:
            address = ipaddress.ip_address((value or "").strip())
        except ValueError:
            return False
        return any(address in network for network in trusted)

    if not trusted or not is_trusted(peer):
        return peer
    hops = [hop.strip() for header in request.headers.getlist("X-Forwarded-For")
            for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        if is_trusted(hop):
            continue
        try:
            return str(ipaddress.ip_address(hop))
        except ValueError:
            return peer  # a forged or garbled hop: the proxy we trust is all we know
    return peer


def _discard_transaction() -> None:
    try:
        db.session.rollback()
    except DBAPIError:
        db.session.registry.clear()


def current_key() -> ApiKey:
    key = getattr(g, "api_key", None)
    if key is None:
        refused = getattr(g, "api_key_refused", None)
        if refused is not None:  # asked again (the rate limiter, then the view): same answer
            raise refused
        try:
            key = key_auth.authenticate(presented_key(), client_address(), settings(),
                                        current_app.extensions.get(key_cache.EXTENSION))
        except (Unauthorized, Forbidden) as error:
            g.api_key_refused = error
            audit.record_now("auth.failed", reason=str(error), path=request.path)
            raise
        except DBAPIError:
            # The database dropped mid-look-up. The rate limiter and the chat guard ask
            # first and swallow errors; leave them a clean session, or the view's own
            # look-up meets "invalid transaction" (a 500) instead of the outage (a 503).
            _discard_transaction()
            raise
        g.api_key = key
    return cast(ApiKey, key)


def rate_limit_identity() -> str:
    """Whom a request counts against: the authenticated key's id, else the client address
    (so a different spelling of one key, or a wrong key, is never a fresh bucket)."""
    try:
        return f"key:{current_key().id}"
    except Exception:  # no, wrong, revoked or denied key, or no database: the view says which
        return f"ip:{client_address()}"


def scoped_session(sid: str, cached: bool = False) -> Session:
    """Resolve ``sid`` (id or name) for the current key: 403 outside its scope, else 404.
    ``cached``: from the API process's session cache (a transient copy, for views that
    only read it: the sends; app/services/session_cache.py)."""
    key = current_key()
    session = session_cache.find(sid) if cached else session_service.find(sid)
    if key.allowed_sessions:
        if session is None or not key_auth.session_allowed(key, session):
            raise Forbidden(f"API key may not access session '{sid}'")
    if session is None:
        raise NotFound(f"Session '{sid}' not found")
    return session


def require(role: str, cached_session: bool = False) -> Callable[[F], F]:
    """Authenticate, check the session scope when the route has ``sid``, then the role.

    The resolved session is passed to the view as ``session`` in place of ``sid``; with
    ``cached_session`` it may be the session cache's read-only copy (send routes only).
    """

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = current_key()
            if "sid" in kwargs:
                kwargs["session"] = scoped_session(kwargs.pop("sid"), cached_session)
            if not key.has_role(role):
                raise Forbidden(f"This action needs the {role} role")
            return view(*args, **kwargs)

        # The document names the role (x-openwa-role): the auth matrix is generated from it.
        apidoc = copy.deepcopy(getattr(wrapper, "_apidoc", {}))
        apidoc.setdefault("manual_doc", {})["x-openwa-role"] = role
        wrapper._apidoc = apidoc  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorator
