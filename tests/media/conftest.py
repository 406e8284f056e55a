"""A platform for media tests: API in-process, a session host, a worker (media and webhooks
queues) and a webhook receiver, with media in a local folder (or S3 through moto)."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.integration.conftest import platform, platform_env, wait_for  # noqa: F401  (fixtures)
from tests.webhooks.receiver import Receiver

MEDIA_ENV = {"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_RETRY_DELAY": "200",
             "WEBHOOK_SWEEP_INTERVAL": "1", "MEDIA_ALLOW_PRIVATE": "true",
             "ENCRYPTION_KEY": "media-test-encryption-key-0123456789",
             "MEDIA_MAX_BYTES": str(2 * 1024 * 1024)}


@pytest.fixture
def media_platform(platform, tmp_path):  # noqa: F811
    """(platform, receiver, session) with a ready session ``media`` and a webhook on `*`."""
    config = platform.app.config["OPENWA"]
    store = tmp_path / "media-store"
    config.storage_local_path = store
    config.webhook_allow_private = config.media_allow_private = True
    config.encryption_key = MEDIA_ENV["ENCRYPTION_KEY"]
    config.media_max_bytes = int(MEDIA_ENV["MEDIA_MAX_BYTES"])
    platform.env.update(MEDIA_ENV, STORAGE_LOCAL_PATH=str(store))
    receiver = Receiver().start()
    platform.start_host()
    worker = platform.start("worker")
    # On a loaded machine a worker has taken 18 s to start: a URL send before it is up
    # would answer 202 and a webhook arrive late, which the tests would read as failures.
    wait_for(lambda: " ready." in worker.output() or not worker.alive(), 90, 0.2, "the worker")
    assert worker.alive(), worker.output()[-3000:]
    session = platform.create_ready_session("media")
    reply = platform.api("POST", "/sessions/media/webhooks", json={"url": receiver.url, "events": ["*"]})
    assert reply.status_code == 201, reply.get_json()
    yield platform, receiver, session
    receiver.stop()


class FileServer:
    """Serves ``routes`` (path -> (status, headers, body)) on 127.0.0.1; counts requests."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.hits: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                owner.hits.append(self.path)
                status, headers, body = owner.routes.get(self.path, (404, {}, b"missing"))
                self.send_response(status)
                for name, value in headers.items():
                    if value != "omit":
                        self.send_header(name, value)
                if "Content-Length" not in owner.routes.get(self.path, (0, {}, b""))[1]:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self) -> "FileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def files() -> Iterator[FileServer]:
    with FileServer() as server:
        yield server
