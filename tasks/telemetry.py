"""Metrics and log context inside Celery processes.

Each session host and worker is its own Prometheus exporter (METRICS_PORT; 9810 for
`openwa host`, 9811 for `openwa worker`): Prometheus scrapes every process, so nothing
has to be shared between them. Task signals feed celery_tasks_total and
celery_task_duration_seconds, and put the task id into every log line of the task.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from celery.signals import task_postrun, task_prerun
from prometheus_client import start_http_server

from app import logs, metrics

log = logging.getLogger(__name__)

_started: dict[str, float] = {}
_STATES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried"}


@task_prerun.connect
def _task_started(task_id: str, task: Any, **_: Any) -> None:
    _started[task_id] = time.perf_counter()
    logs.task_id.set(task_id)


@task_postrun.connect
def _task_finished(task_id: str, task: Any, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None)
    metrics.celery_tasks_total.labels(task.name, _STATES.get(state or "", "failed")).inc()
    if started is not None:
        metrics.celery_task_duration_seconds.labels(task.name).observe(time.perf_counter() - started)
    logs.task_id.set(None)
    logs.session_id.set(None)


def start_exporter(port: int, address: str) -> None:
    """Serve /metrics for this process; a busy port is logged, not fatal."""
    if port <= 0:
        return
    try:
        start_http_server(port, addr=address)
        log.info("metrics on http://%s:%d/metrics", address, port)
    except OSError as error:
        log.warning("metrics exporter not started on %s:%d: %s", address, port, error)
