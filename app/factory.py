"""The OpenWA Flask application factory (`create_app`, re-exported by the `app` package)."""
from __future__ import annotations

from typing import Any

from flask import Flask

from app.config import Config
from app.version import VERSION


def _engine_options(config: Config) -> dict[str, Any]:
    # No pool_pre_ping: db_setup pings a connection only when it has sat idle (a ping per
    # checkout was a round trip per transaction, several per send).
    if config.database_type == "postgres":
        return {"pool_size": config.database_pool_max, "max_overflow": 0, "pool_recycle": 1800}
    return {"pool_pre_ping": True, "connect_args": {"timeout": 30, "check_same_thread": False}}


def create_app(config: Config | None = None) -> Flask:
    """Build the API app. Blueprints are imported here, so importing ``app`` costs nothing."""
    from app import db_setup, hygiene, live, logs, realtime, resilience, security, telemetry
    from app.errors import register_error_handlers
    from app.extensions import api, cache, celery_app, db, limiter, migrate
    from app.services import key_cache, key_usage, session_cache
    from app.services.webhooks import outbox

    config = config or Config.from_env()
    logs.configure(config)
    security.protect_data(config)  # 0700 folders, 0600 files, umask 077 from here on
    app = Flask(__name__)
    app.config.update(
        OPENWA=config,
        SQLALCHEMY_DATABASE_URI=config.sqlalchemy_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(config),
        MAX_CONTENT_LENGTH=20 * 1024 * 1024,
        JSON_SORT_KEYS=False,
        API_TITLE="OpenWA",
        API_VERSION=VERSION,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=config.api_prefix,
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=f"{config.api_prefix}/docs/assets/",  # app/dashboard: no CDN
        API_SPEC_OPTIONS={
            "info": {"description": "Self-hosted WhatsApp HTTP API gateway (OpenWA-compatible)."},
            "security": [{"ApiKeyAuth": []}, {"BearerAuth": []}],
            "components": {"securitySchemes": {
                "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "BearerAuth": {"type": "http", "scheme": "bearer"},
            }},
        },
        RATELIMIT_ENABLED=config.rate_limit_enabled,
        # Counted in the broker's Redis, shared by every worker and API process; if Redis is
        # unreachable each process counts alone until it answers again (never a 500).
        RATELIMIT_STORAGE_URI=config.redis_url or "memory://",
        RATELIMIT_STORAGE_OPTIONS={"socket_timeout": 1, "socket_connect_timeout": 1},
        RATELIMIT_KEY_PREFIX="openwa",
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
        RATELIMIT_DEFAULT=config.rate_limits,
        RATELIMIT_HEADERS_ENABLED=True,
        CACHE_DEFAULT_TIMEOUT=config.cache_ttl,
        **({"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": config.redis_url,
            "CACHE_KEY_PREFIX": "openwa:cache:"}
           if config.cache_type == "redis" and config.redis_url else
           {"CACHE_TYPE": "SimpleCache", "CACHE_THRESHOLD": config.cache_max}),
    )
    if config.redis_url:
        celery_app.conf.update(broker_url=config.redis_url, result_backend=config.redis_url)
    db_setup.install_sqlite_pragmas()
    db.init_app(app)
    key_usage.install()  # the usage meters' exit flush and fork reset, once per process
    key_cache.install()  # a commit that changes an API key empties every API process's cache
    app.extensions[key_cache.EXTENSION] = key_cache.KeyCache(config.auth_cache_seconds)
    session_cache.install()  # a commit that changes a session's status empties them too
    app.extensions[session_cache.EXTENSION] = session_cache.SessionCache(
        config.session_cache_seconds)
    outbox.install()  # the per-transaction memo of active webhooks is forgotten at its end
    live.install()  # events reach /events clients after the commit that stores them
    if config.database_type == "postgres":
        with app.app_context():
            db_setup.ping_when_idle(db.engine)
    migrate.init_app(app, db, directory=str(db_setup.MIGRATIONS_DIR))
    security.install(app)  # before the limiter: its after-request hook must run after the limiter's
    from app.services.media import inline

    inline.install(app)  # media sends: the long base64 to disk; hygiene then checks the rest
    hygiene.install(app)
    limiter.init_app(app)
    cache.init_app(app)
    from app.api.messages import MessageIdConverter

    app.url_map.converters["message_id"] = MessageIdConverter
    api.init_app(app)
    api.register_converter(MessageIdConverter, MessageIdConverter.parameter_schema)
    from app.api.chats import install_converters  # chats, contacts, groups (issue 13.2/3)

    install_converters(app, api)
    register_error_handlers(app)
    _register_blueprints(app, config)
    if config.metrics_enabled:
        telemetry.install(app)
        limiter.exempt(telemetry.blp)
    logs.install_request_ids(app)
    resilience.install(app)
    realtime.install(app, config)
    app.extensions["celery"] = celery_app
    return app


def _register_blueprints(app: Flask, config: Config) -> None:
    from app.api import (
        api_keys,
        chats,
        contacts,
        groups,
        health,
        messages,
        mock,
        sessions,
        webhooks,
    )
    from app.extensions import api, limiter

    prefix = config.api_prefix
    limiter.exempt(health.blp)
    api.register_blueprint(health.blp, url_prefix=f"{prefix}/health")
    # Docker's health check and load balancers call /health without the prefix.
    api.register_blueprint(health.blp, url_prefix="/health", name="health_root")
    api.register_blueprint(api_keys.blp, url_prefix=f"{prefix}/auth")
    api.register_blueprint(sessions.blp, url_prefix=f"{prefix}/sessions")
    api.register_blueprint(messages.blp, url_prefix=f"{prefix}/sessions")
    api.register_blueprint(contacts.blp, url_prefix=f"{prefix}/sessions")
    api.register_blueprint(chats.blp, url_prefix=f"{prefix}/sessions")  # issue 13.2/3
    api.register_blueprint(groups.blp, url_prefix=f"{prefix}/sessions")
    api.register_blueprint(webhooks.session_blp, url_prefix=f"{prefix}/sessions")
    api.register_blueprint(webhooks.blp, url_prefix=f"{prefix}/webhooks")
    # -- bulk sends (issue 13.5) ---
    from app.api import batches
    api.register_blueprint(batches.blp, url_prefix=f"{prefix}/sessions")
    batches.document(api.spec)
    if config.engine_type == "mock":
        api.register_blueprint(mock.blp, url_prefix=f"{prefix}/sessions")
    # -- media (issue 12)
    from app.api import media
    api.register_blueprint(media.blp, url_prefix=f"{prefix}/sessions")
    if config.engine_type == "mock":
        api.register_blueprint(media.mock_blp, url_prefix=f"{prefix}/sessions")
    _register_dashboard(app, config)


def _register_dashboard(app: Flask, config: Config) -> None:
    """The operators' routes, the dashboard at / and Swagger UI's files (issue 14)."""
    from app import dashboard
    from app.api import operators
    from app.extensions import api, limiter

    prefix = config.api_prefix
    api.register_blueprint(operators.stats_blp, url_prefix=f"{prefix}/sessions")
    api.register_blueprint(operators.deliveries_blp, url_prefix=f"{prefix}/sessions")
    api.register_blueprint(operators.audit_blp, url_prefix=f"{prefix}/audit")
    api.register_blueprint(operators.infra_blp, url_prefix=f"{prefix}/infra")
    page = dashboard.make_blueprint(config)
    limiter.exempt(page)
    app.register_blueprint(page)
