"""What a task answers the API, and the one table from an engine's error to the code in
that answer to the API error (and HTTP status) the client sees.

Replies are ``{"ok": True, "result": ...}`` or ``{"ok": False, "code": ..., "error": ...}``:
plain JSON, so the API maps engine errors without unpickling exceptions.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from app.errors import ApiError, BadGateway, EngineUnsupportedError, NotFound, SessionNotReady
from engines import EngineError, EngineNotFound, EngineNotReady, EngineUnsupported


class ErrorRow(NamedTuple):
    engine_error: type[EngineError] | None  # None: not an engine's error
    code: str
    api_error: type[ApiError]
    message: str | None  # when the engine's error says nothing; None: its class name


#: Most specific engine error first: the first row the error is an instance of wins.
ERRORS = (
    ErrorRow(EngineUnsupported, "ENGINE_UNSUPPORTED", EngineUnsupportedError, ""),
    ErrorRow(EngineNotReady, "SESSION_NOT_READY", SessionNotReady, "Session is not ready"),
    ErrorRow(EngineNotFound, "NOT_FOUND", NotFound, "Not found"),  # chats, groups (issue 13)
    ErrorRow(EngineError, "ENGINE_ERROR", BadGateway, None),
)
_BY_CODE = {row.code: row.api_error for row in ERRORS}


def ok(result: Any = None) -> dict[str, Any]:
    return {"ok": True, "result": result}


def fail(code: str, error: str) -> dict[str, Any]:
    if code not in _BY_CODE:
        raise ValueError(f"unknown reply code {code!r}: add it to replies.ERRORS")
    return {"ok": False, "code": code, "error": error}


def engine_failure(error: EngineError) -> dict[str, Any]:
    """The failed reply for an engine's error."""
    for row in ERRORS:
        if row.engine_error is not None and isinstance(error, row.engine_error):
            return fail(row.code, str(error) or (row.message if row.message is not None
                                                 else type(error).__name__))
    raise AssertionError("EngineError has a row")  # pragma: no cover


def unwrap(reply: Any) -> Any:
    """A reply's result, or the API error its code stands for (502 for an unknown code)."""
    if not isinstance(reply, dict) or "ok" not in reply:
        raise BadGateway("Malformed reply from the session host")
    if reply["ok"]:
        return reply.get("result")
    error_class = _BY_CODE.get(reply.get("code") or "", BadGateway)
    raise error_class(reply.get("error") or "Engine error")
