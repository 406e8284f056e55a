"""A webhook receiver for the benchmarks: records when each POST arrived and its JSON."""
from __future__ import annotations

import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """``fail_rate``: the share of requests answered 500, at random (``seed``); ``arrivals``
    holds the answered 2xx ones, ``failures`` counts the others, ``attempts`` has them all."""

    def __init__(self, fail_rate: float = 0.0, seed: int = 17) -> None:
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.attempts: list[tuple[float, str, bool]] = []  # (when, deliveryId, answered 2xx)
        self.failures = 0
        self.fail_rate = fail_rate
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    failing = receiver.random.random() < receiver.fail_rate
                    now = time.perf_counter()
                    receiver.attempts.append((now, body.get("deliveryId", ""), not failing))
                    if failing:
                        receiver.failures += 1
                    else:
                        receiver.arrivals.append((now, body))
                self.send_response(500 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def count(self, event: str | None = None) -> int:
        with self.lock:
            return sum(1 for _, b in self.arrivals if event is None or b.get("event") == event)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
