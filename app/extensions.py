"""Extensions, created bare and bound to an app in ``create_app``."""
from __future__ import annotations

from typing import cast

from celery import Celery
from flask import Flask, current_app
from flask_caching import Cache
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from app.models.base import Base
from app.openapi import OpenWAApi

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
# Answers of engine queries (contacts, chats, groups, number checks): CACHE_TYPE/TTL/MAX.
cache = Cache()
api = OpenWAApi()
# The one Celery app of every process. The API only sends tasks by name through it;
# `tasks` binds task functions and worker bootsteps to it.
celery_app = Celery("openwa", set_as_current=True)
celery_app.config_from_object("celeryconfig")


def current_flask_app() -> Flask:
    """The app behind ``current_app`` (to hand to a thread or a launcher)."""
    return cast(Flask, getattr(current_app, "_get_current_object")())


def _rate_limit_key() -> str:
    """The key's id after authentication, the client address before it (app.auth)."""
    from app.auth import rate_limit_identity  # app.auth imports the services, which import us

    return rate_limit_identity()


# Every window of the app serving the request (one process may build several apps), counted
# in the broker's Redis so every worker and API process shares one count.
limiter = Limiter(key_func=_rate_limit_key, headers_enabled=True,
                  default_limits=[lambda: current_app.config["RATELIMIT_DEFAULT"]])
