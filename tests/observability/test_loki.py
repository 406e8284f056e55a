"""The optional Loki push: lines arrive as JSON with labels; a dead Loki never blocks."""
from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from app.embedded_redis import free_port
from app.logs import ContextFilter, LokiHandler, _json_formatter, request_id
from tests.integration.conftest import wait_for


def make_handler(url: str) -> LokiHandler:
    handler = LokiHandler(url, {"service": "openwa", "role": "test"}, capacity=100, interval=0.1)
    handler.addFilter(ContextFilter())
    handler.setFormatter(_json_formatter())
    return handler


def test_lines_reach_loki_as_json_with_their_labels():
    received: list[dict] = []

    class Loki(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Loki)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    logger = logging.getLogger("test.loki.ok")
    handler = make_handler(f"http://127.0.0.1:{server.server_port}")
    logger.addHandler(handler)
    try:
        token = request_id.set("req-42")
        logger.warning("hello %s", "loki")
        request_id.reset(token)
        wait_for(lambda: received, 5, 0.05, "a push")
    finally:
        logger.removeHandler(handler)
        server.shutdown()
    stream = received[0]["streams"][0]
    assert stream["stream"] == {"service": "openwa", "role": "test"}
    line = json.loads(stream["values"][0][1])
    assert line["message"] == "hello loki" and line["request_id"] == "req-42"
    assert line["level"] == "WARNING" and line["service"] == "openwa"


def test_a_dead_loki_neither_blocks_nor_breaks_logging():
    logger = logging.getLogger("test.loki.down")
    handler = make_handler(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    logger.addHandler(handler)
    try:
        started = time.perf_counter()
        for n in range(500):
            logger.warning("line %d", n)
        elapsed = time.perf_counter() - started
        wait_for(lambda: handler.dropped > 0, 5, 0.05, "the failed push to be dropped")
    finally:
        logger.removeHandler(handler)
    assert elapsed < 1.0  # 500 lines queue without waiting on the network
    assert handler.dropped >= 400  # the capacity is 100: the rest never waited either
