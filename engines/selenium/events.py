"""How bridge events reach the session host: a CDP binding, or polling the in-page buffer.

``binding`` (the default): our own CDP websocket (``driver.start_devtools()``) adds the
runtime binding ``__openwaEmit``; the bridge calls it for every event and Chromium sends a
``Runtime.bindingCalled`` to us at once. Selenium runs each CDP callback on a thread of its
own, so the callback only appends to a queue; the engine reads the queue in ``poll()`` on
the host's thread and never waits on WebDriver for it. ``Runtime.enable`` comes first: without
it the binding is lost when the page reloads. Measured (scripts/bench/selenium_engine.py):
about 1 ms from the page to the queue, against half the poll interval for polling, and no
WebDriver round trip per tick.

``poll``: no websocket; each tick runs ``__openwa.call('drain')`` over WebDriver. It works
wherever WebDriver does (a remote driver without CDP) and costs one command per tick.

Either way the same CDP session also carries the browser-side signals the engine needs:
``Inspector.targetCrashed`` (a renderer crash) and the websocket closing (the browser died).
"""
from __future__ import annotations

import collections
import itertools
import json
import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

BINDING = "__openwaEmit"
_ids = itertools.count(10**9)  # ids of our fire-and-forget commands, far from Selenium's


class CdpChannel:
    """Our CDP session on the page target: scripts for new documents, the binding, crashes."""

    def __init__(self, driver: Any, use_binding: bool) -> None:
        self.use_binding = use_binding
        self.queue: collections.deque[dict[str, Any]] = collections.deque()
        self.crashed = threading.Event()
        self.detached = threading.Event()
        self.devtools, self.connection = driver.start_devtools()
        runtime, inspector = self.devtools.runtime, self.devtools.inspector
        self.connection.on(inspector.TargetCrashed, lambda _event: self.crashed.set())
        self.connection.on(inspector.Detached, lambda _event: self.detached.set())
        self.connection.execute(inspector.enable())
        if use_binding:
            self.connection.on(runtime.BindingCalled, self._on_binding)
            # Runtime.enable first, or the binding does not survive a reload.
            self.connection.execute(runtime.enable())
            self.connection.execute(runtime.add_binding(name=BINDING))

    def add_script(self, source: str) -> None:
        """Run ``source`` in every new document of the page, before the page's own scripts."""
        self.connection.execute(
            self.devtools.page.add_script_to_evaluate_on_new_document(source=source))

    def crash_page(self) -> None:
        """Crash the renderer (tests only)."""
        self._send_only("Page.crash", page=True)

    def close_browser(self) -> None:
        """Ask Chromium to close as a user would (profile flushed); it exits in ~0.1 s.

        chromedriver's own quit can take 5 s after a renderer crash; this does not wait."""
        self._send_only("Browser.close", page=False)

    def _send_only(self, method: str, page: bool) -> None:
        # Neither command answers before the target is gone: send, do not wait for a reply.
        message: dict[str, Any] = {"id": next(_ids), "method": method, "params": {}}
        if page:
            message["sessionId"] = self.connection.session_id
        try:
            self.connection._ws.send(json.dumps(message))
        except Exception as error:  # noqa: BLE001 - a dead socket: the caller kills by pid
            log.debug("could not send %s: %s", method, error)

    def _on_binding(self, event: Any) -> None:
        # On a Selenium CDP thread: only parse and queue.
        if event.name != BINDING:
            return
        try:
            payload = json.loads(event.payload)
        except ValueError:
            log.warning("dropping an unreadable bridge event")
            return
        if isinstance(payload, dict):
            self.queue.append(payload)

    def take(self) -> list[dict[str, Any]]:
        """Everything queued so far, in page order (the CDP threads may race each other)."""
        taken = []
        while True:
            try:
                taken.append(self.queue.popleft())
            except IndexError:
                break
        return order(taken)

    @property
    def open(self) -> bool:
        ws = getattr(self.connection, "_ws", None)
        sock = getattr(ws, "sock", None)
        return bool(ws is not None and sock is not None and getattr(sock, "connected", False))

    def close(self) -> None:
        ws = getattr(self.connection, "_ws", None)
        if ws is not None:
            try:
                ws.keep_running = False
                ws.close()
            except Exception:  # noqa: BLE001 - closing a dead socket may fail any way it likes
                pass


def order(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sort by sequence within each page load; page loads keep their first-seen order."""
    pages: dict[str, int] = {}
    for event in events:
        pages.setdefault(str(event.get("page")), len(pages))
    return sorted(events, key=lambda e: (pages[str(e.get("page"))], int(e.get("seq") or 0)))
