"""One configuration object, read from the environment with typed parsing.

Every setting is one line of :class:`Config`: its type, its one default and, through
:func:`setting`, the variable it is read from (with aliases, bounds or choices). Adding a
setting is adding that line (and its entry in ``.env.example``). An invalid value raises
:class:`ConfigError` with one line naming the variable; entry points print that line and
exit. Code reaches the settings one way: :func:`settings` (``current_app``'s Config), or a
``Config`` handed down where no app context exists.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from app.common.env import (
    BACKUP_SCHEDULE_DEFAULT,
    CRON_FIELDS,
    SCHEDULE_OFF,
    ConfigError,
    Env,
    backup_schedule,
    cron_schedule,
)

if TYPE_CHECKING:
    from celery.schedules import crontab
    from flask import Flask

__all__ = ["CRON_FIELDS", "SCHEDULE_OFF", "Config", "ConfigError", "cron_schedule", "settings"]

#: Host names Chromium may resolve in production: WhatsApp Web and its media/CDN hosts.
WHATSAPP_HOSTS = ("localhost", "whatsapp.com", "*.whatsapp.com", "whatsapp.net", "*.whatsapp.net")
#: Where `make wajs` installs the wa-js bundle (the Docker image sets WAJS_BUNDLE_PATH).
WAJS_DEFAULT_PATH = ".tools/wa-js/node_modules/@wppconnect/wa-js/dist/wppconnect-wa.js"
#: DATA_PATH's default; SQLite, session profiles and local backups default below it.
DATA_DEFAULT = Path("./data")

LOG_LEVELS = ("debug", "info", "warning", "warn", "error", "critical")
STORAGE_TYPES = ("local", "s3", "minio")


def setting(variable: str, default: Any = None, *aliases: str, choices: tuple[str, ...] = (),
            minimum: float | None = None, maximum: int | None = None,
            under_data: str | None = None, default_from: str | None = None,
            clean: Callable[[Any], Any] | None = None,
            read: Callable[[Env], Any] | None = None) -> Any:
    """A Config field read from ``variable`` (then ``aliases``), typed by its annotation.

    ``under_data``: the default is that name under DATA_PATH; ``default_from``: the default
    is another setting's value; ``clean``: normalises what was read; ``read``: reads it
    entirely (for a setting with its own rules). A list setting read empty keeps its default.
    """
    if under_data is not None:
        default = DATA_DEFAULT / under_data
    meta = {"env": variable, "aliases": aliases, "choices": choices, "minimum": minimum,
            "maximum": maximum, "under_data": under_data, "default_from": default_from,
            "clean": clean, "read": read}
    if isinstance(default, (list, tuple)):
        items = list(default)
        return field(default_factory=lambda: list(items), metadata=meta)
    return field(default=default, metadata=meta)


def _api_prefix(value: str) -> str:
    return "/" + value.strip("/")


def _log_level(value: str) -> str:
    return "warning" if value == "warn" else value


def _database_type(value: str) -> str:
    return "postgres" if value == "postgresql" else value


def _prefix(value: str) -> str:
    """An S3 key prefix that is empty or ends with one slash."""
    value = value.strip("/")
    return f"{value}/" if value else ""


def _trusted_proxies(values: list[str]) -> list[str]:
    """IP addresses or CIDR networks (TRUSTED_PROXIES, comma-separated), normalised."""
    result = []
    for value in values:
        try:
            result.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError:
            raise ConfigError(f"TRUSTED_PROXIES: {value!r} is not an IP address or CIDR network") from None
    return result


@dataclass
class Config:
    """Settings for every process. Build with :meth:`from_env`; tests subclass or replace."""

    # application
    port: int = setting("PORT", 2785, minimum=1, maximum=65535)
    api_prefix: str = setting("API_PREFIX", "/api", clean=_api_prefix)
    log_level: str = setting("LOG_LEVEL", "info", choices=LOG_LEVELS, clean=_log_level)
    log_format: str = setting("LOG_FORMAT", "json", choices=("json", "text"))
    data_dir: Path = setting("DATA_PATH", DATA_DEFAULT)
    # database
    database_type: str = setting("DATABASE_TYPE", "sqlite", choices=("sqlite", "postgres", "postgresql"),
                                 clean=_database_type)
    database_sqlite_path: Path = setting("DATABASE_SQLITE_PATH", under_data="openwa.db")
    database_url: str | None = setting("DATABASE_URL")
    database_pool_max: int = setting("DATABASE_POOL_MAX", 20, minimum=1)
    database_ssl: bool = setting("DATABASE_SSL", False)
    # storage
    storage_type: str = setting("STORAGE_TYPE", "local", choices=STORAGE_TYPES)
    storage_local_path: Path = setting("STORAGE_LOCAL_PATH", Path("./media"))
    storage_local_base_url: str = setting("STORAGE_LOCAL_BASE_URL", "/media")
    storage_s3_bucket: str | None = setting("STORAGE_S3_BUCKET")
    storage_s3_region: str | None = setting("STORAGE_S3_REGION")
    storage_s3_endpoint: str | None = setting("STORAGE_S3_ENDPOINT")
    storage_s3_access_key_id: str | None = setting("STORAGE_S3_ACCESS_KEY_ID")
    storage_s3_secret_access_key: str | None = setting("STORAGE_S3_SECRET_ACCESS_KEY")
    storage_s3_force_path_style: bool = setting("STORAGE_S3_FORCE_PATH_STYLE", False)
    # cache, broker
    cache_type: str = setting("CACHE_TYPE", "memory", choices=("memory", "redis"))
    cache_ttl: int = setting("CACHE_TTL", 300, minimum=0)
    cache_max: int = setting("CACHE_MAX", 1000, minimum=1)
    # accepted API keys cached per API process, emptied through Redis on any key change;
    # the bound on staleness only when that signal is lost (app/services/key_cache.py)
    auth_cache_seconds: float = setting("AUTH_CACHE_SECONDS", 10.0, minimum=0)
    # the session a send names, cached the same way (app/services/session_cache.py)
    session_cache_seconds: float = setting("SESSION_CACHE_SECONDS", 10.0, minimum=0)
    redis_url: str | None = setting("REDIS_URL")
    # engine and sessions
    engine_type: str = setting("ENGINE_TYPE", "mock", choices=("mock", "selenium"))
    session_data_path: Path = setting("SESSION_DATA_PATH", under_data="sessions")
    max_sessions: int = setting("MAX_SESSIONS", 10, minimum=1)
    sessions_per_host: int = setting("SESSIONS_PER_HOST", 5, minimum=1)
    session_lease_ttl: int = setting("SESSION_LEASE_TTL", 30, minimum=3)
    send_wait_timeout: float = setting("SEND_WAIT_TIMEOUT", 10.0)
    engine_call_timeout: float = setting("ENGINE_CALL_TIMEOUT", 30.0, minimum=0.1)
    mock_auto_scan_seconds: float = setting("MOCK_AUTO_SCAN_SECONDS", 5.0)
    mock_qr_rotate_seconds: float = setting("MOCK_QR_ROTATE_SECONDS", 20.0, minimum=0.1)
    mock_ack_interval_seconds: float = setting("MOCK_ACK_INTERVAL_SECONDS", 0.5)
    host_poll_interval: float = setting("HOST_POLL_INTERVAL", 0.2, minimum=0.01)
    max_reconnect_attempts: int = setting("MAX_RECONNECT_ATTEMPTS", 10, minimum=1)
    send_sweep_after: float = setting("SEND_SWEEP_AFTER", 60.0, minimum=1.0)
    api_drain_seconds: float = setting("API_DRAIN_SECONDS", 5.0)
    # browser
    chromium_executable_path: str | None = setting("CHROMIUM_EXECUTABLE_PATH", None,
                                                   "PUPPETEER_EXECUTABLE_PATH")
    # None: chromedriver on the PATH, else /usr/bin/chromedriver, else webdriver-manager's
    chromium_driver_path: str | None = setting("CHROMIUM_DRIVER_PATH")
    chromium_headless: bool = setting("CHROMIUM_HEADLESS", True, "PUPPETEER_HEADLESS")
    chromium_args: list[str] = setting("CHROMIUM_ARGS", [], "PUPPETEER_ARGS")
    chromium_allowed_hosts: list[str] = setting("CHROMIUM_ALLOWED_HOSTS", WHATSAPP_HOSTS)
    chromium_command_timeout: float = setting("CHROMIUM_COMMAND_TIMEOUT", 10.0, minimum=1.0)
    chromium_event_delivery: str = setting("CHROMIUM_EVENT_DELIVERY", "binding",
                                           choices=("binding", "poll"))
    webdriver_manager: bool = setting("WEBDRIVER_MANAGER", True)
    webdriver_cache_path: Path = setting("WEBDRIVER_CACHE_PATH", under_data="webdriver")
    se_offline: bool = setting("SE_OFFLINE", False)
    wajs_bundle_path: str = setting("WAJS_BUNDLE_PATH", WAJS_DEFAULT_PATH)
    whatsapp_web_url: str = setting("WHATSAPP_WEB_URL", "https://web.whatsapp.com/")
    # security
    encryption_key: str | None = setting("ENCRYPTION_KEY")
    encryption_key_previous: list[str] = setting("ENCRYPTION_KEY_PREVIOUS", [])
    api_key_master: str | None = setting("API_KEY_MASTER")
    api_key_pepper: str | None = setting("API_KEY_PEPPER")
    # webhooks
    webhook_timeout_ms: int = setting("WEBHOOK_TIMEOUT", 30000, minimum=1)
    webhook_retry_count: int = setting("WEBHOOK_RETRY_COUNT", 3, minimum=0)
    webhook_retry_delay_ms: int = setting("WEBHOOK_RETRY_DELAY", 5000, minimum=0)
    webhook_allow_private: bool = setting("WEBHOOK_ALLOW_PRIVATE", False)
    webhook_retry_max_delay_ms: int = setting("WEBHOOK_RETRY_MAX_DELAY", 3_600_000, minimum=0)
    # "chat": in order per chat; "webhook": one line per webhook
    webhook_order: str = setting("WEBHOOK_ORDER", "chat", choices=("chat", "webhook"))
    # a delivery's claim, renewed while its worker lives
    webhook_lease_s: float = setting("WEBHOOK_LEASE", 6.0, minimum=0.5)
    # rate limiting
    rate_limit_window_ms: int = setting("RATE_LIMIT_WINDOW", 60000, minimum=1)
    rate_limit_max: int = setting("RATE_LIMIT_MAX", 100, minimum=1)
    rate_limit_enabled: bool = setting("RATE_LIMIT_ENABLED", True)
    # metrics
    metrics_token: str | None = setting("METRICS_TOKEN")
    metrics_enabled: bool = setting("METRICS_ENABLED", True)
    # Celery processes' exporter; None: 9810 host, 9811 worker
    metrics_port: int | None = setting("METRICS_PORT", None, minimum=0, maximum=65535)
    metrics_address: str = setting("METRICS_ADDRESS", "127.0.0.1")
    loki_url: str | None = setting("LOKI_URL")
    prometheus_multiproc_dir: str | None = setting("PROMETHEUS_MULTIPROC_DIR")
    flower_basic_auth: str | None = setting("FLOWER_BASIC_AUTH")
    # processes
    api_workers: int = setting("API_WORKERS", 2, minimum=1)
    api_threads: int = setting("API_THREADS", 8, minimum=1)
    worker_concurrency: int = setting("WORKER_CONCURRENCY", 8, minimum=1)
    host_name: str | None = setting("SESSION_HOST_NAME")
    flower_port: int = setting("FLOWER_PORT", 5555, minimum=1, maximum=65535)
    flower_address: str = setting("FLOWER_ADDRESS", "127.0.0.1")
    bind_address: str = setting("BIND_ADDRESS", "0.0.0.0")
    # backups: schedule (cron, UTC; None = no scheduled backups), retention and storage
    backup_schedule: str | None = setting("BACKUP_SCHEDULE", BACKUP_SCHEDULE_DEFAULT, read=backup_schedule)
    backup_retention_daily: int = setting("BACKUP_RETENTION_DAILY", 7, minimum=0)
    backup_retention_weekly: int = setting("BACKUP_RETENTION_WEEKLY", 4, minimum=0)
    backup_retention_monthly: int = setting("BACKUP_RETENTION_MONTHLY", 12, minimum=0)
    # Backups go where media goes unless told otherwise. A missing bucket is the backup's
    # error, not every process's: media may need no bucket yet.
    backup_storage: str = setting("BACKUP_STORAGE", "local", choices=STORAGE_TYPES,
                                  default_from="storage_type")
    backup_path: Path = setting("BACKUP_PATH", under_data="backups")
    backup_s3_bucket: str | None = setting("BACKUP_S3_BUCKET", None, "STORAGE_S3_BUCKET")
    backup_s3_prefix: str = setting("BACKUP_S3_PREFIX", "backups/", clean=_prefix)
    # hardening: rate-limit windows beside RATE_LIMIT_WINDOW/MAX (the medium one; None:
    # derived from it), proxies trusted for X-Forwarded-For, the session-creation cap
    rate_limit_short_window_ms: int = setting("RATE_LIMIT_SHORT_WINDOW", 1000, minimum=1)
    rate_limit_short_max: int | None = setting("RATE_LIMIT_SHORT_MAX", None, minimum=1)
    rate_limit_long_window_ms: int = setting("RATE_LIMIT_LONG_WINDOW", 3_600_000, minimum=1)
    rate_limit_long_max: int | None = setting("RATE_LIMIT_LONG_MAX", None, minimum=1)
    trusted_proxies: list[str] = setting("TRUSTED_PROXIES", [], clean=_trusted_proxies)
    max_created_sessions: int = setting("MAX_CREATED_SESSIONS", 100, minimum=1)
    # dashboard, live events (/events) and the audit log
    events_rate_limit: int = setting("EVENTS_RATE_LIMIT", 60, minimum=1)  # frames/minute/connection
    events_max_clients: int = setting("EVENTS_MAX_CLIENTS", 0, minimum=0)  # per process; 0: API_THREADS/2
    audit_retention_days: int = setting("AUDIT_RETENTION_DAYS", 90, minimum=1)
    flower_url: str | None = setting("FLOWER_URL")
    grafana_url: str | None = setting("GRAFANA_URL")
    # -- media (issue 12): caps, URL fetches, retention
    media_max_bytes: int = setting("MEDIA_MAX_BYTES", 16 * 1024 * 1024, minimum=1)
    media_fetch_timeout: float = setting("MEDIA_FETCH_TIMEOUT", 30.0, minimum=0.1)
    media_allow_private: bool = setting("MEDIA_ALLOW_PRIVATE", False)  # SSRF guard off (tests, LAN)
    media_retention_days: int = setting("MEDIA_RETENTION_DAYS", 30, minimum=0)  # 0: keep forever
    # testing switches (never from the environment)
    testing: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Config":
        """Read every variable; raise ConfigError naming the first bad one."""
        env = Env(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            if "env" in spec.metadata:
                values[spec.name] = _read(env, spec, values)
        if values["database_type"] == "postgres" and not values["database_url"]:
            raise ConfigError("DATABASE_URL must be set when DATABASE_TYPE=postgres")
        config = cls(**values)
        for key, value in overrides.items():
            if not hasattr(config, key):
                raise TypeError(f"unknown setting {key}")
            setattr(config, key, value)
        return config

    def value_of(self, variable: str) -> Any:
        """A setting's value by the name of its environment variable (how engines name the
        settings their options come from)."""
        for spec in dataclasses.fields(self):
            if spec.metadata.get("env") == variable:
                return getattr(self, spec.name)
        raise KeyError(f"no setting is read from {variable}")

    @classmethod
    def variables(cls) -> list[str]:
        """Every environment variable the settings are read from (aliases included)."""
        return [name for spec in dataclasses.fields(cls) if "env" in spec.metadata
                for name in (spec.metadata["env"], *spec.metadata["aliases"])]

    # -- derived ----------------------------------------------------------
    @property
    def backup_crontab(self) -> crontab | None:
        """When beat takes a backup (UTC), or None when scheduled backups are off."""
        return cron_schedule(self.backup_schedule) if self.backup_schedule else None

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_type == "postgres":
            assert self.database_url
            url = self.database_url
            for prefix in ("postgres://", "postgresql://"):
                if url.startswith(prefix):
                    url = "postgresql+psycopg2://" + url[len(prefix):]
            if self.database_ssl and "sslmode=" not in url:
                url += ("&" if "?" in url else "?") + "sslmode=require"
            return url
        return f"sqlite:///{self.database_sqlite_path.resolve()}"

    @property
    def rate_limits(self) -> str:
        """The short, medium (RATE_LIMIT_WINDOW/MAX) and long windows, in Flask-Limiter's
        notation. Unset maxima follow RATE_LIMIT_MAX: half of it (at least 10, at most all
        of it) per short window (a burst), twenty times it per long window (a third of the
        medium rate, sustained)."""
        short = self.rate_limit_short_max or max(self.rate_limit_max // 2,
                                                 min(self.rate_limit_max, 10))
        long = self.rate_limit_long_max or self.rate_limit_max * 20
        return ";".join(f"{amount} per {max(window // 1000, 1)} second" for amount, window in (
            (short, self.rate_limit_short_window_ms), (self.rate_limit_max, self.rate_limit_window_ms),
            (long, self.rate_limit_long_window_ms)))

    @property
    def listens_on_loopback(self) -> bool:
        """Whether the API listens on loopback only (BIND_ADDRESS)."""
        address = self.bind_address.strip("[]")
        if address == "localhost":
            return True
        try:
            return ipaddress.ip_address(address).is_loopback
        except ValueError:
            return False

    @property
    def broker_url(self) -> str:
        if not self.redis_url:
            raise ConfigError("REDIS_URL is not set (`openwa run` starts an embedded Redis)")
        return self.redis_url


def _read(env: Env, spec: dataclasses.Field[Any], values: dict[str, Any]) -> Any:
    """One setting from the environment, typed by the field's annotation."""
    meta = spec.metadata
    if meta["read"] is not None:
        return meta["read"](env)
    name, aliases, kind = meta["env"], meta["aliases"], spec.type
    if meta["under_data"] is not None:
        default = values["data_dir"] / meta["under_data"]
    elif meta["default_from"] is not None:
        default = values[meta["default_from"]]
    elif spec.default_factory is not dataclasses.MISSING:
        default = spec.default_factory()
    else:
        default = spec.default
    bounds = {"minimum": meta["minimum"], "maximum": meta["maximum"]}
    value: Any
    if meta["choices"]:
        value = env.choice(name, default, meta["choices"], *aliases)
    elif kind == "int":
        value = env.integer(name, default, *aliases, **bounds)
    elif kind == "int | None":
        value = None if env.raw(name, *aliases) is None else env.integer(name, 0, *aliases, **bounds)
    elif kind == "float":
        value = env.number(name, default, *aliases, minimum=meta["minimum"] or 0.0)
    elif kind == "bool":
        value = env.flag(name, default, *aliases)
    elif kind == "list[str]":
        value = env.csv(name, *aliases) or default
    elif kind == "Path":
        value = Path(env.text(name, str(default), *aliases))
    elif kind == "str":
        value = env.text(name, default, *aliases)
    elif kind == "str | None":
        value = env.opt(name, *aliases)
    else:  # pragma: no cover - a new annotation needs a line above
        raise TypeError(f"setting {spec.name}: no reader for {kind}")
    return meta["clean"](value) if meta["clean"] is not None else value


def settings(app: "Flask | None" = None) -> Config:
    """The running app's settings (``current_app`` unless an app is given): the one way
    services, views and tasks reach them."""
    if app is None:
        from flask import current_app

        app = current_app
    config: Config = app.config["OPENWA"]
    return config
