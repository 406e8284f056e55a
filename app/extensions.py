"""Extensions, created bare and bound to an app in ``create_app``."""
from __future__ import annotations

import hashlib
from typing import cast

from celery import Celery
from flask import Flask, current_app, request
from flask_caching import Cache
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy

from app.models.base import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
# Answers of engine queries (contacts, chats, groups, number checks): CACHE_TYPE/TTL/MAX.
cache = Cache()
api = Api()
# The one Celery app of every process. The API only sends tasks by name through it;
# `tasks` binds task functions and worker bootsteps to it.
celery_app = Celery("openwa", set_as_current=True)
celery_app.config_from_object("celeryconfig")


def current_flask_app() -> Flask:
    """The app behind ``current_app`` (to hand to a thread or a launcher)."""
    return cast(Flask, getattr(current_app, "_get_current_object")())


def _rate_limit_key() -> str:
    """Limit per presented credential (hashed, never stored), else per client address."""
    presented = request.headers.get("X-API-Key") or request.headers.get("Authorization")
    if presented:
        return "key:" + hashlib.sha256(presented.encode()).hexdigest()[:32]
    return f"ip:{request.remote_addr}"


# The limit is read from the app serving the request: one process may build several apps.
limiter = Limiter(key_func=_rate_limit_key, headers_enabled=True,
                  default_limits=[lambda: current_app.config["RATELIMIT_DEFAULT"]])
