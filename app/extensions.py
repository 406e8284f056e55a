"""Extensions, created bare and bound to an app in ``create_app``."""
from __future__ import annotations

from celery import Celery
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy

from app.models.base import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
api = Api()
# The one Celery app of every process. The API only sends tasks by name through it;
# `tasks` binds task functions and worker bootsteps to it.
celery_app = Celery("openwa", set_as_current=True)
celery_app.config_from_object("celeryconfig")


def _rate_limit_key() -> str:
    from flask import g, request

    key = getattr(g, "api_key", None)
    return f"key:{key.id}" if key is not None else f"ip:{request.remote_addr}"


limiter = Limiter(key_func=_rate_limit_key, default_limits=[], headers_enabled=True)
