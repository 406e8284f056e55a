"""Domain errors and the one handler that renders every error in the OpenWA shape.

Body: ``{"statusCode": 404, "message": "...", "error": "Not Found", "code"?: "..."}``;
a validation failure is 400 with ``message`` as a list of field messages.
"""
from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, g, has_request_context, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error a service raises; the handler maps it to a response."""

    status = 400
    code: str | None = None

    def __init__(self, message: str | list[str], *, status: int | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message if isinstance(message, str) else "; ".join(message))
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class SessionNotReady(Conflict):
    code = "SESSION_NOT_READY"


class EngineUnsupportedError(ApiError):
    status = 501
    code = "ENGINE_UNSUPPORTED"


class BadGateway(ApiError):
    status = 502
    code = "ENGINE_ERROR"


class ServiceUnavailable(ApiError):
    status = 503


class GatewayTimeout(ApiError):
    status = 504
    code = "ENGINE_TIMEOUT"


def error_body(status: int, message: str | list[str], code: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"statusCode": status, "message": message,
                            "error": HTTPStatus(status).phrase}
    if code:
        body["code"] = code
    return body


def error_response(status: int, message: str | list[str], code: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    response = jsonify(error_body(status, message, code))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if has_request_context() and "Retry-After" in response.headers:
        g.own_retry_after = response.headers["Retry-After"]  # app.security keeps it as is
    return response


def flatten_validation(messages: Any, prefix: str = "", top: bool = True) -> list[str]:
    """Turn marshmallow's nested error dict into flat ``field: message`` lines (the request
    locations webargs nests them under only at the top: a field may be named `headers`)."""
    if isinstance(messages, dict):
        lines: list[str] = []
        for key, value in messages.items():
            if key in ("json", "query", "headers", "view_args", "form", "files") and top:
                lines.extend(flatten_validation(value, "", top=False))
            elif key == "_schema":
                lines.extend(flatten_validation(value, prefix, top=False))
            else:
                lines.extend(flatten_validation(value, f"{prefix}{key}.", top=False))
        return lines
    if isinstance(messages, (list, tuple)):
        lines = []
        for item in messages:
            lines.extend(flatten_validation(item, prefix, top=False))
        return lines
    field = prefix[:-1] if prefix.endswith(".") else prefix
    return [f"{field}: {messages}" if field else str(messages)]


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError) -> Response:
        return error_response(error.status, error.message, error.code, error.headers)

    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException) -> Response:
        status = error.code or 500
        data = getattr(error, "data", None) or {}
        messages = data.get("messages")
        if status == 422 or (status == 400 and messages):
            # flask-smorest reports schema failures as 422; OpenWA says 400 with a list.
            lines = flatten_validation(messages) if messages else [error.description or "Invalid"]
            return error_response(400, lines or ["Invalid request"])
        headers: dict[str, str] = {}
        code = None
        message: str = error.description or HTTPStatus(status).phrase
        if status == 429:
            code = "RATE_LIMITED"
            message = "Too many requests"
            retry_after = getattr(error, "retry_after", None)
            headers["Retry-After"] = str(retry_after or 1)
        elif status == 404:
            message = "Route not found"
        elif status == 405:
            message = "Method not allowed"
            allowed = sorted(getattr(error, "valid_methods", None) or [])
            if allowed:
                headers["Allow"] = ", ".join(allowed)
        elif status == 413:
            message = "Request body is too large"
        if status >= 500:
            message = HTTPStatus(status).phrase
        return error_response(status, message, code, headers)

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Response:
        log.exception("unhandled error: %s", type(error).__name__)
        return error_response(500, "Internal server error")
