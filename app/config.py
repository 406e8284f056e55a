"""One configuration object, read from the environment with typed parsing.

Every variable the code reads is parsed here and listed in ``.env.example``. An invalid
value raises :class:`ConfigError` with one line naming the variable; entry points print
that line and exit.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from celery.schedules import crontab

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A variable has a value we cannot use."""


class _Env:
    """Typed reads of one environment mapping; each read names its variable on failure."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def raw(self, *names: str) -> str | None:
        for name in names:
            value = self.environ.get(name)
            if value is not None and value.strip() != "":
                return value.strip()
        return None

    def str(self, name: str, default: str, *aliases: str) -> str:
        value = self.raw(name, *aliases)
        return default if value is None else value

    def opt(self, name: str, *aliases: str) -> str | None:
        return self.raw(name, *aliases)

    def _parse(self, name: str, default: T, parse: Callable[[str], T], what: str,
               aliases: tuple[str, ...] = ()) -> T:
        value = self.raw(name, *aliases)
        if value is None:
            return default
        try:
            return parse(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}={value!r} is not {what}") from None

    def int(self, name: str, default: int, *aliases: str, minimum: int | None = None,
            maximum: int | None = None) -> int:
        result = self._parse(name, default, int, "a whole number", aliases)
        if minimum is not None and result < minimum:
            raise ConfigError(f"{name}={result} must be at least {minimum}")
        if maximum is not None and result > maximum:
            raise ConfigError(f"{name}={result} must be at most {maximum}")
        return result

    def float(self, name: str, default: float, *aliases: str, minimum: float = 0.0) -> float:
        result = self._parse(name, default, float, "a number", aliases)
        if result < minimum:
            raise ConfigError(f"{name}={result} must be at least {minimum}")
        return result

    def bool(self, name: str, default: bool, *aliases: str) -> bool:
        def parse(value: str) -> bool:
            lowered = value.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(value)

        return self._parse(name, default, parse, "true or false", aliases)

    def choice(self, name: str, default: str, choices: tuple[str, ...], *aliases: str) -> str:
        value = self.str(name, default, *aliases).lower()
        if value not in choices:
            raise ConfigError(f"{name}={value!r} must be one of: {', '.join(choices)}")
        return value

    def csv(self, name: str, *aliases: str) -> list[str]:
        value = self.raw(name, *aliases)
        if value is None:
            return []
        return [part.strip() for part in value.split(",") if part.strip()]


#: Host names Chromium may resolve in production: WhatsApp Web and its media/CDN hosts.
WHATSAPP_HOSTS = ("localhost", "whatsapp.com", "*.whatsapp.com", "whatsapp.net", "*.whatsapp.net")
#: Where `make wajs` installs the wa-js bundle (the Docker image sets WAJS_BUNDLE_PATH).
WAJS_DEFAULT_PATH = ".tools/wa-js/node_modules/@wppconnect/wa-js/dist/wppconnect-wa.js"

LOG_LEVELS = ("debug", "info", "warning", "warn", "error", "critical")

#: The five fields of a cron expression, in cron's order, named as celery's ``crontab`` names them.
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
#: BACKUP_SCHEDULE values that turn scheduled backups off.
SCHEDULE_OFF = ("off", "none", "disabled", "false")


def cron_schedule(expression: str) -> crontab:
    """Translate ``"m h dom mon dow"`` to a celery crontab; ValueError names the bad field.

    ``celeryconfig.py`` (which imports nothing from the project) repeats this translation;
    a test keeps the two equal.
    """
    parts = expression.split()
    if len(parts) != len(CRON_FIELDS):
        raise ValueError(f"needs 5 fields (minute hour day-of-month month day-of-week), "
                         f"got {len(parts)}")
    for name, part in zip(CRON_FIELDS, parts):
        try:
            crontab(**{name: part})
        except ValueError as error:
            raise ValueError(f"{name.replace('_', ' ')} {part!r}: {error}") from None
    return crontab(**dict(zip(CRON_FIELDS, parts)))


@dataclass
class Config:
    """Settings for every process. Build with :meth:`from_env`; tests subclass or replace."""

    # application
    port: int = 2785
    api_prefix: str = "/api"
    log_level: str = "info"
    log_format: str = "json"
    data_dir: Path = Path("./data")
    # database
    database_type: str = "sqlite"
    database_sqlite_path: Path = Path("./data/openwa.db")
    database_url: str | None = None
    database_pool_max: int = 20
    database_ssl: bool = False
    # storage
    storage_type: str = "local"
    storage_local_path: Path = Path("./media")
    storage_local_base_url: str = "/media"
    storage_s3_bucket: str | None = None
    storage_s3_region: str | None = None
    storage_s3_endpoint: str | None = None
    storage_s3_access_key_id: str | None = None
    storage_s3_secret_access_key: str | None = None
    storage_s3_force_path_style: bool = False
    # cache, broker
    cache_type: str = "memory"
    cache_ttl: int = 300
    cache_max: int = 1000
    redis_url: str | None = None
    # engine and sessions
    engine_type: str = "mock"
    session_data_path: Path = Path("./data/sessions")
    max_sessions: int = 10
    sessions_per_host: int = 5
    session_lease_ttl: int = 30
    send_wait_timeout: float = 10.0
    engine_call_timeout: float = 30.0
    mock_auto_scan_seconds: float = 5.0
    mock_qr_rotate_seconds: float = 20.0
    mock_ack_interval_seconds: float = 0.5
    host_poll_interval: float = 0.2
    max_reconnect_attempts: int = 10
    send_sweep_after: float = 60.0
    api_drain_seconds: float = 5.0
    # browser
    chromium_executable_path: str | None = None
    chromium_driver_path: str = "/usr/bin/chromedriver"
    chromium_headless: bool = True
    chromium_args: list[str] = field(default_factory=list)
    chromium_allowed_hosts: list[str] = field(default_factory=lambda: list(WHATSAPP_HOSTS))
    chromium_command_timeout: float = 10.0
    chromium_event_delivery: str = "binding"
    webdriver_manager: bool = False
    wajs_bundle_path: str = WAJS_DEFAULT_PATH
    whatsapp_web_url: str = "https://web.whatsapp.com/"
    # security
    encryption_key: str | None = None
    encryption_key_previous: list[str] = field(default_factory=list)
    api_key_master: str | None = None
    api_key_pepper: str | None = None
    # webhooks
    webhook_timeout_ms: int = 30000
    webhook_retry_count: int = 3
    webhook_retry_delay_ms: int = 5000
    webhook_allow_private: bool = False
    webhook_retry_max_delay_ms: int = 3_600_000
    # rate limiting
    rate_limit_window_ms: int = 60000
    rate_limit_max: int = 100
    rate_limit_enabled: bool = True
    # metrics
    metrics_token: str | None = None
    metrics_enabled: bool = True
    metrics_port: int | None = None  # Celery processes' exporter; None: 9810 host, 9811 worker
    metrics_address: str = "127.0.0.1"
    loki_url: str | None = None
    prometheus_multiproc_dir: str | None = None
    flower_basic_auth: str | None = None
    # processes
    api_workers: int = 2
    api_threads: int = 8
    worker_concurrency: int = 8
    host_name: str | None = None
    flower_port: int = 5555
    flower_address: str = "127.0.0.1"
    bind_address: str = "0.0.0.0"
    # backups: schedule (cron, UTC; None = no scheduled backups), retention and storage
    backup_schedule: str | None = "0 2 * * *"
    backup_retention_daily: int = 7
    backup_retention_weekly: int = 4
    backup_retention_monthly: int = 12
    backup_storage: str = "local"
    backup_path: Path = Path("./data/backups")
    backup_s3_bucket: str | None = None
    backup_s3_prefix: str = "backups/"
    # dashboard, live events (/events) and the audit log
    events_rate_limit: int = 60  # frames a client may send per minute on one connection
    events_max_clients: int = 0  # per API process; 0: half of API_THREADS
    audit_retention_days: int = 90
    flower_url: str | None = None
    grafana_url: str | None = None
    # testing switches (never from the environment)
    testing: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Config":
        """Read every variable; raise ConfigError naming the first bad one."""
        env = _Env(os.environ if environ is None else environ)
        data_dir = Path(env.str("DATA_PATH", "./data"))
        database_type = env.choice("DATABASE_TYPE", "sqlite", ("sqlite", "postgres", "postgresql"))
        if database_type == "postgresql":
            database_type = "postgres"
        database_url = env.opt("DATABASE_URL")
        if database_type == "postgres" and not database_url:
            raise ConfigError("DATABASE_URL must be set when DATABASE_TYPE=postgres")
        log_level = env.choice("LOG_LEVEL", "info", LOG_LEVELS)
        storage_type = env.choice("STORAGE_TYPE", "local", ("local", "s3", "minio"))
        config = cls(
            port=env.int("PORT", 2785, minimum=1, maximum=65535),
            api_prefix="/" + env.str("API_PREFIX", "/api").strip("/"),
            log_level="warning" if log_level == "warn" else log_level,
            log_format=env.choice("LOG_FORMAT", "json", ("json", "text")),
            data_dir=data_dir,
            database_type=database_type,
            database_sqlite_path=Path(env.str("DATABASE_SQLITE_PATH", str(data_dir / "openwa.db"))),
            database_url=database_url,
            database_pool_max=env.int("DATABASE_POOL_MAX", 20, minimum=1),
            database_ssl=env.bool("DATABASE_SSL", False),
            storage_type=storage_type,
            storage_local_path=Path(env.str("STORAGE_LOCAL_PATH", "./media")),
            storage_local_base_url=env.str("STORAGE_LOCAL_BASE_URL", "/media"),
            storage_s3_bucket=env.opt("STORAGE_S3_BUCKET"),
            storage_s3_region=env.opt("STORAGE_S3_REGION"),
            storage_s3_endpoint=env.opt("STORAGE_S3_ENDPOINT"),
            storage_s3_access_key_id=env.opt("STORAGE_S3_ACCESS_KEY_ID"),
            storage_s3_secret_access_key=env.opt("STORAGE_S3_SECRET_ACCESS_KEY"),
            storage_s3_force_path_style=env.bool("STORAGE_S3_FORCE_PATH_STYLE", False),
            cache_type=env.choice("CACHE_TYPE", "memory", ("memory", "redis")),
            cache_ttl=env.int("CACHE_TTL", 300, minimum=0),
            cache_max=env.int("CACHE_MAX", 1000, minimum=1),
            redis_url=env.opt("REDIS_URL"),
            engine_type=env.choice("ENGINE_TYPE", "mock", ("mock", "selenium")),
            session_data_path=Path(env.str("SESSION_DATA_PATH", str(data_dir / "sessions"))),
            max_sessions=env.int("MAX_SESSIONS", 10, minimum=1),
            sessions_per_host=env.int("SESSIONS_PER_HOST", 5, minimum=1),
            session_lease_ttl=env.int("SESSION_LEASE_TTL", 30, minimum=3),
            send_wait_timeout=env.float("SEND_WAIT_TIMEOUT", 10.0),
            engine_call_timeout=env.float("ENGINE_CALL_TIMEOUT", 30.0, minimum=0.1),
            mock_auto_scan_seconds=env.float("MOCK_AUTO_SCAN_SECONDS", 5.0),
            mock_qr_rotate_seconds=env.float("MOCK_QR_ROTATE_SECONDS", 20.0, minimum=0.1),
            mock_ack_interval_seconds=env.float("MOCK_ACK_INTERVAL_SECONDS", 0.5),
            host_poll_interval=env.float("HOST_POLL_INTERVAL", 0.2, minimum=0.01),
            max_reconnect_attempts=env.int("MAX_RECONNECT_ATTEMPTS", 10, minimum=1),
            send_sweep_after=env.float("SEND_SWEEP_AFTER", 60.0, minimum=1.0),
            api_drain_seconds=env.float("API_DRAIN_SECONDS", 5.0),
            chromium_executable_path=env.opt("CHROMIUM_EXECUTABLE_PATH", "PUPPETEER_EXECUTABLE_PATH"),
            chromium_driver_path=env.str("CHROMIUM_DRIVER_PATH", "/usr/bin/chromedriver"),
            chromium_headless=env.bool("CHROMIUM_HEADLESS", True, "PUPPETEER_HEADLESS"),
            chromium_args=env.csv("CHROMIUM_ARGS", "PUPPETEER_ARGS"),
            chromium_allowed_hosts=(env.csv("CHROMIUM_ALLOWED_HOSTS")
                                    or list(WHATSAPP_HOSTS)),
            chromium_command_timeout=env.float("CHROMIUM_COMMAND_TIMEOUT", 10.0, minimum=1.0),
            chromium_event_delivery=env.choice("CHROMIUM_EVENT_DELIVERY", "binding",
                                               ("binding", "poll")),
            webdriver_manager=env.bool("WEBDRIVER_MANAGER", False),
            wajs_bundle_path=env.str("WAJS_BUNDLE_PATH", WAJS_DEFAULT_PATH),
            whatsapp_web_url=env.str("WHATSAPP_WEB_URL", "https://web.whatsapp.com/"),
            encryption_key=env.opt("ENCRYPTION_KEY"),
            encryption_key_previous=env.csv("ENCRYPTION_KEY_PREVIOUS"),
            api_key_master=env.opt("API_KEY_MASTER"),
            api_key_pepper=env.opt("API_KEY_PEPPER"),
            webhook_timeout_ms=env.int("WEBHOOK_TIMEOUT", 30000, minimum=1),
            webhook_retry_count=env.int("WEBHOOK_RETRY_COUNT", 3, minimum=0),
            webhook_retry_delay_ms=env.int("WEBHOOK_RETRY_DELAY", 5000, minimum=0),
            webhook_allow_private=env.bool("WEBHOOK_ALLOW_PRIVATE", False),
            webhook_retry_max_delay_ms=env.int("WEBHOOK_RETRY_MAX_DELAY", 3_600_000, minimum=0),
            rate_limit_window_ms=env.int("RATE_LIMIT_WINDOW", 60000, minimum=1),
            rate_limit_max=env.int("RATE_LIMIT_MAX", 100, minimum=1),
            rate_limit_enabled=env.bool("RATE_LIMIT_ENABLED", True),
            metrics_token=env.opt("METRICS_TOKEN"),
            metrics_enabled=env.bool("METRICS_ENABLED", True),
            metrics_port=(env.int("METRICS_PORT", 0, minimum=0, maximum=65535)
                          if env.opt("METRICS_PORT") else None),
            metrics_address=env.str("METRICS_ADDRESS", "127.0.0.1"),
            loki_url=env.opt("LOKI_URL"),
            prometheus_multiproc_dir=env.opt("PROMETHEUS_MULTIPROC_DIR"),
            flower_basic_auth=env.opt("FLOWER_BASIC_AUTH"),
            api_workers=env.int("API_WORKERS", 2, minimum=1),
            api_threads=env.int("API_THREADS", 8, minimum=1),
            worker_concurrency=env.int("WORKER_CONCURRENCY", 8, minimum=1),
            host_name=env.opt("SESSION_HOST_NAME"),
            flower_port=env.int("FLOWER_PORT", 5555, minimum=1, maximum=65535),
            flower_address=env.str("FLOWER_ADDRESS", "127.0.0.1"),
            bind_address=env.str("BIND_ADDRESS", "0.0.0.0"),
            backup_schedule=_backup_schedule(env),
            backup_retention_daily=env.int("BACKUP_RETENTION_DAILY", 7, minimum=0),
            backup_retention_weekly=env.int("BACKUP_RETENTION_WEEKLY", 4, minimum=0),
            backup_retention_monthly=env.int("BACKUP_RETENTION_MONTHLY", 12, minimum=0),
            # Backups go where media goes unless told otherwise. A missing bucket is the
            # backup's error, not every process's: media may need no bucket yet.
            backup_storage=env.choice("BACKUP_STORAGE", storage_type, ("local", "s3", "minio")),
            backup_path=Path(env.str("BACKUP_PATH", str(data_dir / "backups"))),
            backup_s3_bucket=env.opt("BACKUP_S3_BUCKET") or env.opt("STORAGE_S3_BUCKET"),
            backup_s3_prefix=_prefix(env.str("BACKUP_S3_PREFIX", "backups/")),
            events_rate_limit=env.int("EVENTS_RATE_LIMIT", 60, minimum=1),
            events_max_clients=env.int("EVENTS_MAX_CLIENTS", 0, minimum=0),
            audit_retention_days=env.int("AUDIT_RETENTION_DAYS", 90, minimum=1),
            flower_url=env.opt("FLOWER_URL"),
            grafana_url=env.opt("GRAFANA_URL"),
        )
        for key, value in overrides.items():
            if not hasattr(config, key):
                raise TypeError(f"unknown setting {key}")
            setattr(config, key, value)
        return config

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
                    url = "postgresql+psycopg://" + url[len(prefix):]
            if self.database_ssl and "sslmode=" not in url:
                url += ("&" if "?" in url else "?") + "sslmode=require"
            return url
        return f"sqlite:///{self.database_sqlite_path.resolve()}"

    @property
    def broker_url(self) -> str:
        if not self.redis_url:
            raise ConfigError("REDIS_URL is not set (`openwa run` starts an embedded Redis)")
        return self.redis_url


def _backup_schedule(env: _Env) -> str | None:
    value = env.str("BACKUP_SCHEDULE", "0 2 * * *")
    if value.lower() in SCHEDULE_OFF:
        return None
    try:
        cron_schedule(value)
    except ValueError as error:
        raise ConfigError(f"BACKUP_SCHEDULE={value!r} is not a cron expression: {error}") from None
    return " ".join(value.split())


def _prefix(value: str) -> str:
    """An S3 key prefix that is empty or ends with one slash."""
    value = value.strip("/")
    return f"{value}/" if value else ""
