"""Flower behind its login (issue 16): Flower shows task arguments and results.

:func:`secure_argv` is the one call `openwa flower` makes. When ``FLOWER_BASIC_AUTH`` is
set, every Flower page and API call asks for it, whatever Flower's own decorators say;
only /healthcheck ("OK") and /metrics (counts by task name and worker, scraped by
Prometheus without credentials: monitoring/prometheus.yml) stay public. When it is
unset and Flower listens beyond loopback, credentials are generated once into
``DATA_PATH/.flower-auth`` (0600) and the log says where, never what.
"""
from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any

from app.config import Config

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
CREDENTIALS_FILE = ".flower-auth"


def credentials_path(config: Config) -> Path:
    return config.data_dir / CREDENTIALS_FILE


def generated_credentials(config: Config) -> str:
    """``admin:<random>`` from DATA_PATH/.flower-auth, created (0600) on first use."""
    path = credentials_path(config)
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = f"admin:{secrets.token_urlsafe(24)}"
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(value + "\n")
    return value


def basic_auth(config: Config) -> str | None:
    """The credentials Flower must ask for, or None (loopback and nothing configured)."""
    if config.flower_basic_auth:
        return config.flower_basic_auth
    if config.flower_address in LOOPBACK:
        return None
    credentials = generated_credentials(config)
    log.warning("Flower listens on %s: its login is in %s (set FLOWER_BASIC_AUTH to choose one)",
                config.flower_address, credentials_path(config))
    return credentials


def protect_every_page() -> None:
    """Make every Flower handler check the login before it runs (with basic auth on):
    BaseHandler's prepare and every subclass's own prepare (the API handlers have one)."""
    import flower.urls  # noqa: F401  (imports every handler module, so all subclasses exist)
    from flower.views import BaseHandler
    from flower.views.monitor import Healthcheck, Metrics

    public = (Healthcheck, Metrics)

    def guarded(original: Any) -> Any:
        def prepare(self: Any) -> Any:
            if self.application.options.basic_auth and not isinstance(self, public):
                _ = self.current_user  # get_current_user raises 401 without valid credentials
            return original(self)

        prepare._openwa_guarded = True  # type: ignore[attr-defined]
        return prepare

    pending = [BaseHandler]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        own = cls.__dict__.get("prepare")
        if cls is BaseHandler and own is None:
            own = BaseHandler.prepare
        if own is not None and not getattr(own, "_openwa_guarded", False):
            cls.prepare = guarded(own)


def secure_argv(config: Config, argv: list[str]) -> list[str]:
    """``argv`` of `celery flower` with the login every page asks for, when there is one."""
    argv = [arg for arg in argv if not arg.startswith("--basic_auth=")]
    credentials = basic_auth(config)
    if credentials:
        argv.append(f"--basic_auth={credentials}")
        protect_every_page()
    return argv
