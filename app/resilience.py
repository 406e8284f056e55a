"""Staying up through dependency trouble: database outages answer 503 (never 500) and an
idempotent read is retried once; a stopping API drains (readiness 503) before it stops."""
from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from flask import Flask, Response, request
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from app.config import settings
from app.errors import error_response
from app.extensions import db

log = logging.getLogger(__name__)

DB_DOWN = (OperationalError, InterfaceError)
IDEMPOTENT = ("GET", "HEAD", "OPTIONS")


def _retry_reads(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except DB_DOWN:
            if request.method not in IDEMPOTENT:
                raise
            # The pool may hold connections from before a database restart: drop them and
            # try once more on fresh ones (pre-ping only catches them at checkout).
            db.session.rollback()
            db.engine.dispose()
            time.sleep(0.2)
            return view(*args, **kwargs)

    return wrapper


def install(app: Flask) -> None:
    for endpoint, view in list(app.view_functions.items()):
        if endpoint != "static":
            app.view_functions[endpoint] = _retry_reads(view)

    # Registered after Flask-SQLAlchemy's, so it runs first: closing a session whose
    # connection the server just killed raises from the rollback; that must not turn a
    # finished response into a 500.
    @app.teardown_appcontext
    def _remove_session_safely(_: BaseException | None) -> None:
        try:
            db.session.remove()
        except DBAPIError as error:
            log.warning("discarding a database session after: %s", type(error.orig).__name__)
            db.session.registry.clear()

    @app.errorhandler(DBAPIError)
    def database_unavailable(error: DBAPIError) -> Response:
        db.session.rollback()
        if isinstance(error, DB_DOWN) or error.connection_invalidated:
            log.warning("database unavailable: %s", type(error.orig).__name__)
            return error_response(503, "Database is unavailable", "DATABASE_UNAVAILABLE",
                                  {"Retry-After": "5"})
        log.exception("database error")
        return error_response(500, "Internal server error")


# -- draining ------------------------------------------------------------------
def drain_flag(data_dir: Path, master_pid: int) -> Path:
    return data_dir / f".api-draining.{master_pid}"


def draining() -> bool:
    """True once the gunicorn master of this worker has been asked to stop."""
    flag = drain_flag(settings().data_dir, os.getppid())
    return flag.exists()
