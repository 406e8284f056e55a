"""Logging, configured once per process: JSON lines for machines, text for people.

Every line carries timestamp, level, logger, message, service, role, version and, where
they apply, request_id, session_id and task_id (from context variables set by the request
hooks, the auth layer and the Celery signals). LOKI_URL adds a non-blocking push to Loki.
"""
from __future__ import annotations

import contextvars
import json
import logging
import queue
import re
import sys
import threading
import time
import uuid

import requests
from flask import Flask, Response, g, request
from pythonjsonlogger.json import JsonFormatter

from app.config import Config
from app.version import VERSION

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
session_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("session_id", default=None)
task_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("task_id", default=None)

_configured = False
_role = "app"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ContextFilter(logging.Filter):
    """Adds the service fields and whatever context is known to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = "openwa"
        record.role = _role
        record.version = VERSION
        for name, var in (("request_id", request_id), ("session_id", session_id),
                          ("task_id", task_id)):
            value = var.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True


class LokiHandler(logging.Handler):
    """Pushes batches to Loki from a background thread; never blocks the caller.

    A bounded queue takes records; when it is full, or Loki does not answer, lines are
    dropped (and counted) rather than slowing the application down.
    """

    def __init__(self, url: str, labels: dict[str, str], capacity: int = 10000,
                 interval: float = 1.0) -> None:
        super().__init__()
        self.url = url.rstrip("/") + "/loki/api/v1/push"
        self.labels = labels
        self.queue: queue.Queue[tuple[str, str]] = queue.Queue(capacity)
        self.dropped = 0
        self.interval = interval
        self.session = requests.Session()
        self.thread = threading.Thread(target=self._run, name="loki-push", daemon=True)
        self.thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait((str(time.time_ns()), self.format(record)))
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            batch: list[tuple[str, str]] = []
            while len(batch) < 1000:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            if not batch:
                continue
            body = {"streams": [{"stream": self.labels, "values": [list(v) for v in batch]}]}
            try:
                self.session.post(self.url, data=json.dumps(body), timeout=2,
                                  headers={"Content-Type": "application/json"})
            except requests.RequestException:
                self.dropped += len(batch)


class ResultStoreRecovers(logging.Filter):
    """Celery's result consumer logs ``CRITICAL ... The Celery application must be restarted``
    when one reconnect to Redis fails. Nothing needs restarting: the API drops that consumer
    and its next call builds a fresh one (``app.services.dispatch``), so the record becomes a
    warning that says what really happens (issue 17 item 8)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.CRITICAL and "must be restarted" in record.getMessage():
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = ("result store (Redis) unreachable: calls waiting for a reply answer "
                          "pending and the next one reconnects")
            record.args = ()
        return True


RESULT_CONSUMER_LOGGER = "celery.backends.asynchronous"


def _json_formatter() -> logging.Formatter:
    return JsonFormatter("%(levelname)s %(name)s %(message)s %(service)s %(role)s %(version)s",
                         rename_fields={"levelname": "level", "name": "logger"}, timestamp=True)


def configure(config: Config, role: str | None = None, force: bool = False) -> None:
    global _configured, _role
    if role:
        _role = role
    if _configured and not force:
        return
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(_json_formatter() if config.log_format == "json" else
                         logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handlers: list[logging.Handler] = [console]
    if config.loki_url:
        loki = LokiHandler(config.loki_url, {"service": "openwa", "role": _role})
        loki.setFormatter(_json_formatter())  # Loki gets JSON whatever the console shows
        handlers.append(loki)
    for handler in handlers:
        handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(config.log_level.upper())
    for noisy in ("urllib3", "selenium", "kombu", "amqp"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    consumer = logging.getLogger(RESULT_CONSUMER_LOGGER)
    if not any(isinstance(f, ResultStoreRecovers) for f in consumer.filters):
        consumer.addFilter(ResultStoreRecovers())
    _configured = True


def set_role(role: str) -> None:
    global _role
    _role = role


def install_request_ids(app: Flask) -> None:
    """Honour a sane X-Request-ID or make one; return it; put it in every log line."""

    @app.before_request
    def _bind_request_id() -> None:
        presented = request.headers.get("X-Request-ID", "")
        value = presented if _REQUEST_ID.match(presented) else uuid.uuid4().hex
        g.request_id = value
        request_id.set(value)
        session_id.set(None)

    @app.after_request
    def _return_request_id(response: Response) -> Response:
        value = g.get("request_id")
        if value:
            response.headers["X-Request-ID"] = value
        return response
