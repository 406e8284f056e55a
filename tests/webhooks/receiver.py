"""A real HTTP receiver on 127.0.0.1 that records what it gets and can misbehave."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


class Receiver:
    """``mode``: "ok" (204), "fail" (500), "hang" (sleep past the caller's timeout),
    "redirect" (302). ``fail_first`` answers 500 to that many requests first; ``fail_if``
    answers 500 to the bodies it is true for; ``delay`` seconds pass before each answer;
    ``on_request(body)`` runs while the sender waits. ``in_flight_max`` is the most
    requests it was answering at once."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.mode = "ok"
        self.fail_first = 0
        self.hang_seconds = 5.0
        self.delay = 0.0
        self.fail_if: Callable[[dict[str, Any]], bool] | None = None
        self.on_request: Callable[[dict[str, Any]], None] | None = None
        self.in_flight = self.in_flight_max = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parsed = json.loads(body)
                with receiver.lock:
                    receiver.requests.append({"headers": dict(self.headers), "body": body,
                                              "path": self.path, "at": time.monotonic()})
                    failing = receiver.fail_first > 0
                    receiver.fail_first -= 1 if failing else 0
                    failing = failing or bool(receiver.fail_if and receiver.fail_if(parsed))
                    mode = receiver.mode
                    receiver.in_flight += 1
                    receiver.in_flight_max = max(receiver.in_flight_max, receiver.in_flight)
                try:
                    if receiver.on_request is not None:
                        receiver.on_request(parsed)
                    time.sleep(receiver.delay)
                finally:
                    with receiver.lock:
                        receiver.in_flight -= 1
                if mode == "hang":
                    time.sleep(receiver.hang_seconds)
                if failing or mode == "fail":
                    self.send_response(500)
                elif mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                else:
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> "Receiver":
        if self.thread is None or not self.thread.is_alive():
            if self.server.socket.fileno() == -1:  # restarted after stop(): same port
                port = self.port
                self.server = ThreadingHTTPServer(("127.0.0.1", port), self.server.RequestHandlerClass)
            self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
            self.thread.start()
        return self

    def stop(self) -> None:
        """Down: connections are refused until start()."""
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests]

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return [b for b in self.bodies() if name is None or b["event"] == name]
