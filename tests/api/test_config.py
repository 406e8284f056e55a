"""Configuration: every variable of the operations contract (devops section 10.5) is read with
its documented default, a bad value is one ConfigError naming its variable, and the
``openwa`` command turns that error into one line and a non-zero exit."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import Config, ConfigError

REPO = Path(__file__).resolve().parents[2]


# -- defaults -------------------------------------------------------------------------------------
# (variable of section 10.5, Config attribute, default). NODE_ENV is Node's own and has no
# Python counterpart; SESSION_DATA_PATH defaults under DATA_PATH instead of ./.wwebjs_auth.
DEFAULTS = [
    ("PORT", "port", 2785),
    ("API_PREFIX", "api_prefix", "/api"),
    ("LOG_LEVEL", "log_level", "info"),
    ("LOG_FORMAT", "log_format", "json"),
    ("DATABASE_TYPE", "database_type", "sqlite"),
    ("DATABASE_SQLITE_PATH", "database_sqlite_path", Path("data/openwa.db")),
    ("DATABASE_URL", "database_url", None),
    ("DATABASE_POOL_MAX", "database_pool_max", 20),
    ("DATABASE_SSL", "database_ssl", False),
    ("STORAGE_TYPE", "storage_type", "local"),
    ("STORAGE_LOCAL_PATH", "storage_local_path", Path("media")),
    ("STORAGE_LOCAL_BASE_URL", "storage_local_base_url", "/media"),
    ("STORAGE_S3_BUCKET", "storage_s3_bucket", None),
    ("STORAGE_S3_REGION", "storage_s3_region", None),
    ("STORAGE_S3_ENDPOINT", "storage_s3_endpoint", None),
    ("STORAGE_S3_ACCESS_KEY_ID", "storage_s3_access_key_id", None),
    ("STORAGE_S3_SECRET_ACCESS_KEY", "storage_s3_secret_access_key", None),
    ("STORAGE_S3_FORCE_PATH_STYLE", "storage_s3_force_path_style", False),
    ("CACHE_TYPE", "cache_type", "memory"),
    ("CACHE_TTL", "cache_ttl", 300),
    ("CACHE_MAX", "cache_max", 1000),
    ("REDIS_URL", "redis_url", None),
    ("ENGINE_TYPE", "engine_type", "mock"),
    ("SESSION_DATA_PATH", "session_data_path", Path("data/sessions")),
    ("MAX_SESSIONS", "max_sessions", 10),
    ("CHROMIUM_EXECUTABLE_PATH", "chromium_executable_path", None),
    ("CHROMIUM_HEADLESS", "chromium_headless", True),
    ("CHROMIUM_ARGS", "chromium_args", []),
    ("ENCRYPTION_KEY", "encryption_key", None),
    ("API_KEY_MASTER", "api_key_master", None),
    ("WEBHOOK_TIMEOUT", "webhook_timeout_ms", 30000),
    ("WEBHOOK_RETRY_COUNT", "webhook_retry_count", 3),
    ("WEBHOOK_RETRY_DELAY", "webhook_retry_delay_ms", 5000),
    ("RATE_LIMIT_WINDOW", "rate_limit_window_ms", 60000),
    ("RATE_LIMIT_MAX", "rate_limit_max", 100),
]


@pytest.mark.parametrize("variable, attribute, default", DEFAULTS, ids=[d[0] for d in DEFAULTS])
def test_an_unset_variable_takes_its_documented_default(variable, attribute, default):
    value = getattr(Config.from_env({}), attribute)
    if isinstance(default, Path):
        assert Path(value) == default or Path(value).resolve() == default.resolve()
    else:
        assert value == default


def test_an_empty_variable_counts_as_unset():
    config = Config.from_env({"PORT": "", "LOG_LEVEL": "  ", "MAX_SESSIONS": ""})
    assert (config.port, config.log_level, config.max_sessions) == (2785, "info", 10)


def test_the_defaults_need_no_environment_at_all():
    config = Config.from_env({})
    assert config.sqlalchemy_url.startswith("sqlite:///")
    assert config.sqlalchemy_url.endswith("data/openwa.db")


# -- every variable is read -----------------------------------------------------------------------
VALUES = [
    ("PORT", "8080", "port", 8080),
    ("API_PREFIX", "/v1/", "api_prefix", "/v1"),
    ("API_PREFIX", "v2", "api_prefix", "/v2"),
    ("LOG_LEVEL", "debug", "log_level", "debug"),
    ("LOG_LEVEL", "WARN", "log_level", "warning"),
    ("LOG_FORMAT", "text", "log_format", "text"),
    ("DATABASE_SQLITE_PATH", "/var/lib/openwa/db.sqlite", "database_sqlite_path",
     Path("/var/lib/openwa/db.sqlite")),
    ("DATABASE_POOL_MAX", "5", "database_pool_max", 5),
    ("DATABASE_SSL", "true", "database_ssl", True),
    ("STORAGE_TYPE", "s3", "storage_type", "s3"),
    ("STORAGE_TYPE", "MinIO", "storage_type", "minio"),
    ("STORAGE_LOCAL_PATH", "/srv/media", "storage_local_path", Path("/srv/media")),
    ("STORAGE_LOCAL_BASE_URL", "https://cdn.example.com/m", "storage_local_base_url",
     "https://cdn.example.com/m"),
    ("STORAGE_S3_BUCKET", "openwa-media", "storage_s3_bucket", "openwa-media"),
    ("STORAGE_S3_REGION", "ap-southeast-1", "storage_s3_region", "ap-southeast-1"),
    ("STORAGE_S3_ENDPOINT", "http://minio:9000", "storage_s3_endpoint", "http://minio:9000"),
    ("STORAGE_S3_ACCESS_KEY_ID", "AKIA123", "storage_s3_access_key_id", "AKIA123"),
    ("STORAGE_S3_SECRET_ACCESS_KEY", "s3cr3t", "storage_s3_secret_access_key", "s3cr3t"),
    ("STORAGE_S3_FORCE_PATH_STYLE", "yes", "storage_s3_force_path_style", True),
    ("CACHE_TYPE", "redis", "cache_type", "redis"),
    ("CACHE_TTL", "60", "cache_ttl", 60),
    ("CACHE_MAX", "50", "cache_max", 50),
    ("REDIS_URL", "redis://localhost:6379", "redis_url", "redis://localhost:6379"),
    ("ENGINE_TYPE", "selenium", "engine_type", "selenium"),
    ("SESSION_DATA_PATH", "/srv/sessions", "session_data_path", Path("/srv/sessions")),
    ("MAX_SESSIONS", "3", "max_sessions", 3),
    ("CHROMIUM_EXECUTABLE_PATH", "/usr/bin/chromium", "chromium_executable_path",
     "/usr/bin/chromium"),
    ("CHROMIUM_HEADLESS", "false", "chromium_headless", False),
    ("CHROMIUM_ARGS", "--no-sandbox, --disable-gpu,", "chromium_args",
     ["--no-sandbox", "--disable-gpu"]),
    ("ENCRYPTION_KEY", "k" * 32, "encryption_key", "k" * 32),
    ("API_KEY_MASTER", "my-master-api-key", "api_key_master", "my-master-api-key"),
    ("WEBHOOK_TIMEOUT", "1500", "webhook_timeout_ms", 1500),
    ("WEBHOOK_RETRY_COUNT", "0", "webhook_retry_count", 0),
    ("WEBHOOK_RETRY_DELAY", "250", "webhook_retry_delay_ms", 250),
    ("RATE_LIMIT_WINDOW", "1000", "rate_limit_window_ms", 1000),
    ("RATE_LIMIT_MAX", "7", "rate_limit_max", 7),
]


@pytest.mark.parametrize("variable, raw, attribute, expected", VALUES,
                         ids=[f"{v[0]}={v[1]}" for v in VALUES])
def test_each_variable_is_read_and_typed(variable, raw, attribute, expected):
    assert getattr(Config.from_env({variable: raw}), attribute) == expected


def test_postgres_needs_database_url_and_gets_the_psycopg2_driver():
    config = Config.from_env({"DATABASE_TYPE": "postgres",
                              "DATABASE_URL": "postgresql://u:p@db:5432/openwa"})
    assert config.database_type == "postgres"
    assert config.sqlalchemy_url == "postgresql+psycopg2://u:p@db:5432/openwa"
    config = Config.from_env({"DATABASE_TYPE": "postgresql", "DATABASE_SSL": "true",
                              "DATABASE_URL": "postgres://u@db/openwa"})
    assert config.database_type == "postgres"
    assert config.sqlalchemy_url == "postgresql+psycopg2://u@db/openwa?sslmode=require"


@pytest.mark.parametrize("raw, expected", [("true", True), ("1", True), ("yes", True), ("on", True),
                                           ("TRUE", True), ("false", False), ("0", False),
                                           ("no", False), ("off", False)])
def test_booleans_accept_the_usual_spellings(raw, expected):
    assert Config.from_env({"DATABASE_SSL": raw}).database_ssl is expected


# -- PUPPETEER_* aliases --------------------------------------------------------------------------
def test_puppeteer_variables_are_aliases_of_chromium():
    config = Config.from_env({"PUPPETEER_EXECUTABLE_PATH": "/usr/bin/chromium-browser",
                              "PUPPETEER_HEADLESS": "false",
                              "PUPPETEER_ARGS": "--no-sandbox,--disable-setuid-sandbox"})
    assert config.chromium_executable_path == "/usr/bin/chromium-browser"
    assert config.chromium_headless is False
    assert config.chromium_args == ["--no-sandbox", "--disable-setuid-sandbox"]


def test_chromium_variables_win_over_their_puppeteer_aliases():
    config = Config.from_env({"CHROMIUM_EXECUTABLE_PATH": "/opt/chromium",
                              "PUPPETEER_EXECUTABLE_PATH": "/usr/bin/chromium-browser",
                              "CHROMIUM_HEADLESS": "true", "PUPPETEER_HEADLESS": "false",
                              "CHROMIUM_ARGS": "--a", "PUPPETEER_ARGS": "--b"})
    assert config.chromium_executable_path == "/opt/chromium"
    assert config.chromium_headless is True
    assert config.chromium_args == ["--a"]


def test_an_invalid_puppeteer_alias_is_refused():
    with pytest.raises(ConfigError, match="HEADLESS"):
        Config.from_env({"PUPPETEER_HEADLESS": "sometimes"})


# -- invalid values -------------------------------------------------------------------------------
INVALID = [
    ("PORT", "abc"), ("PORT", "0"), ("PORT", "65536"), ("PORT", "-1"), ("PORT", "80.5"),
    ("DATABASE_TYPE", "oracle"), ("DATABASE_TYPE", "mysql"),
    ("LOG_LEVEL", "loud"), ("LOG_FORMAT", "xml"),
    ("DATABASE_POOL_MAX", "0"), ("DATABASE_POOL_MAX", "many"),
    ("DATABASE_SSL", "maybe"),
    ("STORAGE_TYPE", "ftp"), ("STORAGE_S3_FORCE_PATH_STYLE", "perhaps"),
    ("CACHE_TYPE", "memcached"), ("CACHE_TTL", "-5"), ("CACHE_MAX", "0"),
    ("ENGINE_TYPE", "telegram"),
    ("MAX_SESSIONS", "0"), ("MAX_SESSIONS", "ten"),
    ("CHROMIUM_HEADLESS", "sometimes"),
    ("WEBHOOK_TIMEOUT", "30s"), ("WEBHOOK_TIMEOUT", "0"), ("WEBHOOK_RETRY_COUNT", "-1"),
    ("WEBHOOK_RETRY_DELAY", "soon"),
    ("RATE_LIMIT_WINDOW", "0"), ("RATE_LIMIT_MAX", "0"), ("RATE_LIMIT_MAX", "lots"),
    ("RATE_LIMIT_ENABLED", "kinda"),
    ("SEND_WAIT_TIMEOUT", "fast"), ("ENGINE_CALL_TIMEOUT", "0"),
]


@pytest.mark.parametrize("variable, raw", INVALID, ids=[f"{v}={r}" for v, r in INVALID])
def test_an_invalid_value_raises_config_error_naming_the_variable(variable, raw):
    with pytest.raises(ConfigError) as caught:
        Config.from_env({variable: raw})
    message = str(caught.value)
    assert variable in message
    assert "\n" not in message


def test_postgres_without_database_url_names_database_url():
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Config.from_env({"DATABASE_TYPE": "postgres"})


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_env_example_parses():
    """Every active line of .env.example is a value the code accepts."""
    path = REPO / ".env.example"
    if not path.exists():
        pytest.skip(".env.example is not in this checkout")
    environ = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            environ[name.strip()] = value.strip()
    config = Config.from_env(environ)
    assert config.port == 2785
    assert config.rate_limit_max == 100


# -- the openwa command ---------------------------------------------------------------------------
def _openwa() -> str:
    path = Path(sys.executable).with_name("openwa")
    if not path.exists():
        pytest.skip("the openwa console script is not installed in this environment")
    return str(path)


def _run(args: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "DATA_PATH": str(tmp_path / "data"), **extra}
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_openwa_with_port_abc_exits_non_zero_with_one_line_naming_port(tmp_path):
    result = _run([_openwa(), "--help"], tmp_path, PORT="abc")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "PORT" in lines[0] and "abc" in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_openwa_with_a_bad_database_type_names_it(tmp_path):
    result = _run([sys.executable, "-m", "app", "--help"], tmp_path, DATABASE_TYPE="oracle")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "DATABASE_TYPE" in lines[0], result.stderr


def test_openwa_with_a_valid_configuration_starts(tmp_path):
    result = _run([_openwa(), "--help"], tmp_path, PORT="8080")
    assert result.returncode == 0, result.stderr
    assert "openwa" in result.stdout.lower()
