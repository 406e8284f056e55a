"""Exposure controls of the API process (issue 16): standard security headers, Retry-After
only where it means something, and owner-only permissions on the data directory."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from flask import Flask, Response, g, request

from app.config import Config, settings

#: Sent on every response. Swagger UI (an HTML page) gets no Content-Security-Policy of
#: its own: it loads its assets; JSON needs no script, style or frame at all.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
JSON_CSP = "default-src 'none'; frame-ancestors 'none'"
#: Statuses where Retry-After is meaningful: rate limited, and unavailable for a while.
RETRY_AFTER_STATUSES = (429, 503)


def install(app: Flask) -> None:
    """Call before ``limiter.init_app``: Flask runs after-request hooks in reverse order, so
    this one sees the response after Flask-Limiter has added its headers."""

    @app.after_request
    def _secure_headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if response.mimetype != "text/html":
            response.headers.setdefault("Content-Security-Policy", JSON_CSP)
        # API answers are per key and may carry a new key or a QR code: never cached.
        if request.path.startswith(settings(app).api_prefix + "/") or \
                request.path.startswith("/health"):
            response.headers["Cache-Control"] = "no-store"
        # Flask-Limiter adds Retry-After to every response it counts; only a refusal keeps
        # it. Another status keeps the value its own error set (a 503's), not the limiter's.
        if response.status_code != 429:
            own = g.get("own_retry_after")
            if own is not None and response.status_code in RETRY_AFTER_STATUSES:
                response.headers["Retry-After"] = own
            else:
                response.headers.pop("Retry-After", None)
        return response


def private_path(path: Path, directory: bool) -> None:
    """Make ``path`` owner-only (0700 for a folder, 0600 for a file) where we own it."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        wanted = 0o700 if directory else 0o600
        if mode & 0o077:
            path.chmod(mode & ~0o077 | (wanted & 0o700))
    except (FileNotFoundError, PermissionError):
        pass


#: A SQLite database's files: the database, its write-ahead log, shared memory and journal.
SQLITE_FILES = ("", "-wal", "-shm", "-journal")


def shared_folder(path: Path) -> bool:
    """A folder everyone may write to (world-writable or sticky, as /tmp): not ours to
    close or walk."""
    try:
        return bool(path.stat().st_mode & (stat.S_IWOTH | stat.S_ISVTX))
    except FileNotFoundError:
        return False


def protect_data(config: Config) -> None:
    """Owner-only permissions on everything under DATA_PATH and the SQLite files, and a
    umask so what this process creates later (the database's -wal/-shm files, Redis's
    append-only file, session profiles, backups) is born owner-only."""
    os.umask(0o077)
    roots = {config.data_dir, config.session_data_path, config.backup_path}
    if config.database_type == "sqlite":
        roots.add(config.database_sqlite_path.parent)
        for suffix in SQLITE_FILES:  # its own files, wherever the folder is
            private_path(Path(f"{config.database_sqlite_path}{suffix}"), directory=False)
    for root in roots:
        root.mkdir(parents=True, exist_ok=True)
        if shared_folder(root):
            # /tmp and its like (DATABASE_SQLITE_PATH=/tmp/openwa.db): closing it, or every
            # file in it, would break every other program on the machine.
            continue
        private_path(root, directory=True)
        for current, folders, files in os.walk(root):
            folders[:] = [name for name in folders if not shared_folder(Path(current) / name)]
            for name in folders:
                private_path(Path(current) / name, directory=True)
            for name in files:
                private_path(Path(current) / name, directory=False)
