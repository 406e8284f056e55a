"""A Redis outage seen by the API's result consumer (issue 17 item 8): Celery logs
``CRITICAL ... The Celery application must be restarted`` although the API recovers by
itself (app/services/dispatch.py drops the consumer); the log must not order a restart."""
from __future__ import annotations

import logging
import time

import pytest
from celery import Celery

from app import logs
from app.config import Config
from app.embedded_redis import start as start_redis


@pytest.fixture
def configured_logs(tmp_path, caplog):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.configure(Config(data_dir=tmp_path, log_format="text"), force=True)
    root.addHandler(caplog.handler)
    yield caplog
    root.handlers[:], level = saved
    root.setLevel(level)


def test_a_result_store_outage_is_a_warning_not_an_order_to_restart(tmp_path, configured_logs):
    server, url = start_redis(tmp_path)
    celery = Celery("outage", broker=url, backend=url)
    celery.conf.result_backend_transport_options = {"retry_policy": {
        "max_retries": 1, "interval_start": 0, "interval_step": 0.1, "timeout": 1}}
    consumer = celery.backend.result_consumer
    try:
        consumer.start("a-task-id")  # subscribed, as while the API waits for a reply
        server.kill()
        server.wait()
        deadline = time.monotonic() + 15
        with pytest.raises(RuntimeError, match="must be restarted"):
            while time.monotonic() < deadline:  # as the API's wait loop drains
                consumer.drain_events(timeout=0.2)
    finally:
        server.kill()
        server.wait()
    records = [r for r in configured_logs.records if r.name == "celery.backends.asynchronous"]
    assert records, "Celery's result consumer logged nothing: the path under test changed"
    assert all(r.levelno == logging.WARNING for r in records)
    assert all("must be restarted" not in r.getMessage() for r in records)
    assert "the next one reconnects" in records[-1].getMessage()
