"""A real HTTP receiver on 127.0.0.1 that records what it gets and can misbehave."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """``mode``: "ok" (204), "fail" (500), "hang" (sleep past the caller's timeout),
    "redirect" (302). ``fail_first`` answers 500 to that many requests first."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.mode = "ok"
        self.fail_first = 0
        self.hang_seconds = 5.0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append({"headers": dict(self.headers), "body": body,
                                              "path": self.path, "at": time.monotonic()})
                    failing = receiver.fail_first > 0
                    receiver.fail_first -= 1 if failing else 0
                    mode = receiver.mode
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
