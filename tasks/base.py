"""The Flask app inside Celery processes, and the task decorator every task uses.

Workers build their Flask app when the worker starts (never at import); each task runs
inside an app context so services and the database session work as in the API.
"""
from __future__ import annotations

from typing import Any, Callable

from celery import Task, shared_task
from celery.signals import worker_init
from flask import Flask

from app import create_app

_flask_app: Flask | None = None


def set_flask_app(app: Flask) -> None:
    global _flask_app
    _flask_app = app


def flask_app() -> Flask:
    global _flask_app
    if _flask_app is None:
        _flask_app = create_app()
    return _flask_app


@worker_init.connect
def _build_app_at_worker_start(**_: Any) -> None:
    flask_app()


class FlaskTask(Task):
    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with flask_app().app_context():
            return self.run(*args, **kwargs)


def openwa_task(name: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``shared_task`` with our base class and an explicit dotted name."""
    return shared_task(name=name, base=FlaskTask, **options)  # type: ignore[no-any-return]
