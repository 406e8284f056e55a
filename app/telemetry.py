"""What the API exports to Prometheus, and the request hooks that feed it.

Design: gunicorn runs several worker processes, so the API uses prometheus_client's
multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by `openwa api` before anything imports
prometheus_client); a scrape of /api/metrics sums every worker. Gauges that describe the
deployment (sessions, hosts, queues) are computed from the database and the broker at
scrape time, so every API process reports the same truth. Celery processes are separate
exporters (see tasks/telemetry.py): Prometheus scrapes each of them.
"""
from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterator

from flask import Flask, Response, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import select

from app import metrics
from app.common.names import DECLARED_QUEUES, host_queue, session_queue
from app.config import settings
from app.errors import error_response
from app.extensions import api, db
from app.models import RUNNING, Session, SessionStatus, utcnow
from app.services import dispatch, hosts

log = logging.getLogger(__name__)
access = logging.getLogger("openwa.access")
METRICS_ENDPOINT = "metrics.Metrics"


class DeploymentCollector(Collector):
    """Sessions, hosts and queue lengths, read when Prometheus scrapes."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        config = settings()
        rows = db.session.execute(select(Session.id, Session.status, Session.desired_state,
                                         Session.lease_expires_at)).all()
        now = utcnow()
        status = GaugeMetricFamily("session_status", "1 for the current status of each session",
                                   labels=["session_id", "status"])
        for session_id, state, _, _ in rows:
            status.add_metric([session_id, state], 1.0)
        yield status
        yield GaugeMetricFamily("active_sessions_total", "Sessions that should be running",
                                value=sum(1 for r in rows if r[2] == RUNNING))
        yield GaugeMetricFamily("connected_sessions_total", "Sessions that are ready",
                                value=sum(1 for r in rows if r[1] == SessionStatus.READY))
        yield GaugeMetricFamily(
            "sessions_without_lease", "Sessions that should run but no live lease covers",
            value=sum(1 for r in rows if r[2] == RUNNING and (r[3] is None or r[3] <= now)))
        live = hosts.live_hosts(config)
        yield GaugeMetricFamily("session_hosts_live", "Session hosts with a fresh heartbeat",
                                value=len(live))
        yield GaugeMetricFamily("session_hosts_capacity", "Free session slots on live hosts",
                                value=sum(max(h.free, 0) for h in live))
        db.session.rollback()
        queues = GaugeMetricFamily("message_queue_size", "Messages waiting in a broker queue",
                                   labels=["queue_name"])
        names = [*DECLARED_QUEUES, *(session_queue(r[0]) for r in rows if r[2] == RUNNING),
                 *(host_queue(h.name) for h in live)]
        try:
            for name, size in dispatch.queue_lengths(names).items():
                queues.add_metric([name], float(size))
        except dispatch.BROKER_ERRORS as error:
            log.warning("queue sizes unavailable: %s", type(error).__name__)
        yield queues


def exposition() -> bytes:
    scrape = CollectorRegistry(auto_describe=False)
    if settings().prometheus_multiproc_dir:
        MultiProcessCollector(scrape)
        ProcessCollector(registry=scrape)
        GCCollector(registry=scrape)
        PlatformCollector(registry=scrape)
        shared = b""
    else:
        shared = generate_latest(REGISTRY)
    scrape.register(DeploymentCollector())
    return shared + generate_latest(scrape)


def metrics_view() -> Response:
    token = settings().metrics_token
    if token:
        presented = request.headers.get("Authorization", "")
        if not hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
            return error_response(401, "Metrics need Authorization: Bearer <METRICS_TOKEN>")
    return Response(exposition(), mimetype=CONTENT_TYPE_LATEST)


blp = Blueprint("metrics", __name__, description="Prometheus metrics")


@blp.route("")
class Metrics(MethodView):
    @blp.doc(security=[{"BearerAuth": []}, {}],
             responses={"200": {"description": "Prometheus text exposition format",
                                "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}})
    def get(self) -> Response:
        """Prometheus metrics (Bearer METRICS_TOKEN when one is set)"""
        return metrics_view()


def install(app: Flask) -> None:
    """Serve /metrics; time every request and count it by route template."""
    api.register_blueprint(blp, url_prefix=f"{app.config['OPENWA'].api_prefix}/metrics")

    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("request_started", None)
        if started is not None and request.endpoint != METRICS_ENDPOINT:
            elapsed = time.perf_counter() - started
            path = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
            metrics.http_requests_total.labels(request.method, path, str(response.status_code)).inc()
            metrics.http_request_duration_seconds.labels(request.method, path).observe(elapsed)
            # The access log: the route template, never the query string (no secrets there).
            access.info("%s %s %s %.1fms", request.method, request.path, response.status_code,
                        elapsed * 1000, extra={"method": request.method, "path": path,
                                               "status": response.status_code,
                                               "duration_ms": round(elapsed * 1000, 2)})
        return response
