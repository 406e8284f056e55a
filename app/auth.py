"""Authentication and authorisation for views.

``X-API-Key`` wins over ``Authorization: Bearer``; never a query parameter. Scope checks
(allowed IPs, allowed sessions) run before the role check.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar, cast

from flask import g, request

from app.config import settings
from app.errors import Forbidden, NotFound, Unauthorized
from app.models import ApiKey, Session
from app.services import audit, key_auth
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


def current_key() -> ApiKey:
    key = getattr(g, "api_key", None)
    if key is None:
        try:
            key = key_auth.authenticate(presented_key(), request.remote_addr, settings())
        except (Unauthorized, Forbidden) as refused:
            audit.record_now("auth.failed", reason=str(refused), path=request.path)
            raise
        g.api_key = key
    return cast(ApiKey, key)


def scoped_session(sid: str) -> Session:
    """Resolve ``sid`` (id or name) for the current key: 403 outside its scope, else 404."""
    key = current_key()
    session = session_service.find(sid)
    if key.allowed_sessions:
        if session is None or not key_auth.session_allowed(key, session):
            raise Forbidden(f"API key may not access session '{sid}'")
    if session is None:
        raise NotFound(f"Session '{sid}' not found")
    return session


def require(role: str) -> Callable[[F], F]:
    """Authenticate, check the session scope when the route has ``sid``, then the role.

    The resolved session is passed to the view as ``session`` in place of ``sid``.
    """

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = current_key()
            if "sid" in kwargs:
                kwargs["session"] = scoped_session(kwargs.pop("sid"))
            if not key.has_role(role):
                raise Forbidden(f"This action needs the {role} role")
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorator
