"""The dashboard in real Chromium against real processes on the mock engine: login, link a
session by its live QR, chat with the echo contact, webhooks, API keys, role-aware buttons,
escaping of WhatsApp-supplied text, and Swagger UI with the network limited to loopback.

Screenshots of every page go to tests/artifacts/dashboard/ (ignored by git)."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.integration.conftest import wait_for
from tests.live import LivePlatform
from tests.realtime.conftest import start_host
from tests.tooling import require_binary

pytestmark = [pytest.mark.integration, pytest.mark.selenium, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "dashboard"
XSS = '<img src=x onerror="window.__pwned=1">'
ECHO = "15550000000"


def _browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = require_binary("chromium", "apt-get install chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1280,900",
                 # Loopback only: names do not resolve and anything else goes to a dead proxy.
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                 "--proxy-server=http://127.0.0.1:9"):  # loopback itself bypasses a proxy
        options.add_argument(flag)
    service = Service(require_binary("chromedriver", "apt-get install chromium-driver"))
    return webdriver.Chrome(service=service, options=options)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    driver = _browser()
    yield driver
    driver.quit()


class Receiver:
    """A webhook receiver on loopback that records what it gets."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"


class Page:
    def __init__(self, driver: webdriver.Chrome, root: str) -> None:
        self.driver, self.root = driver, root
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def wait(self, predicate: Any, timeout: float = 20) -> Any:
        # The page re-renders lists on live events: an element read mid-render is re-read.
        return WebDriverWait(self.driver, timeout, 0.1, ignored_exceptions=(
            StaleElementReferenceException, NoSuchElementException)).until(lambda d: predicate())

    def find(self, css: str) -> Any:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[Any]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        found = self.all(css)
        return found[0].text if found else ""

    def login(self, key: str) -> None:
        self.driver.get(self.root + "/")
        self.find("#login-key").send_keys(key)
        self.find("#login-submit").click()
        self.wait(lambda: self.find("#app").is_displayed())
        self.wait(lambda: self.text("#live-state") == "live")

    def go(self, page: str) -> None:
        self.driver.execute_script("location.hash = arguments[0]", page)
        self.wait(lambda: self.find("#main").get_attribute("data-page") == page)

    def click(self, css: str) -> None:
        self.wait(lambda: self.all(css) and self.all(css)[0].is_enabled())
        self.find(css).click()

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_an_operator_links_a_session_and_uses_every_page_from_the_dashboard_alone(
        live_stack: LivePlatform, root_url: str, browser: webdriver.Chrome) -> None:
    live = live_stack
    live.env.update({"MOCK_QR_ROTATE_SECONDS": "2", "WEBHOOK_ALLOW_PRIVATE": "true"})
    live.start_api()
    start_host(live, "host-dash@test")
    worker = live.start("worker")
    wait_for(lambda: " ready." in worker.output(), 60, 0.2, "the worker")
    ready_at = time.monotonic()  # what `make run` reports as ready: API answers, a host is in
    page = Page(browser, root_url)

    page.login(live.key)
    assert page.text("#whoami") == "admin"
    # No key in the URL or in a cookie: only in the tab's session storage.
    assert live.key not in browser.current_url and browser.get_cookies() == []
    assert browser.execute_script("return sessionStorage.getItem('openwa.key')") == live.key

    page.go("sessions")
    page.find("#new-session").send_keys("dash1")
    page.click("#create-session button")
    page.click('tr[data-session="dash1"] [data-action="Start"]')
    page.wait(lambda: (page.find("#qr-image").get_attribute("src") or "").startswith("data:image/png"))
    first_qr = page.find("#qr-image").get_attribute("src")
    page.shot("sessions-qr")
    # The mock engine rotates its QR every 2 s: the image follows session.qr by itself.
    page.wait(lambda: page.find("#qr-image").get_attribute("src") != first_qr, 20)
    assert live.call("POST", "/sessions/dash1/mock/scan").status_code == 200  # the phone scans
    page.wait(lambda: page.text('tr[data-session="dash1"] .status') == "ready", 30)
    linked_seconds = time.monotonic() - ready_at
    # The row may read `ready` from the list before the status event clears the QR panel.
    page.wait(lambda: page.all("#qr-image") == [] and "ready" in page.text("#qr-status"), 10)
    page.shot("sessions-ready")

    page.go("chats")
    page.wait(lambda: page.all("#session-pick option"))
    page.find("#send-to").send_keys(ECHO)
    page.find("#send-text").send_keys("hello from the dashboard")
    page.click("#send-form button")
    # The echo contact answers: the reply arrives live in the open thread.
    page.wait(lambda: len([m for m in page.all("#thread .msg.in")
                           if m.text == "hello from the dashboard"]) == 1, 30)
    assert page.all(f'#chat-list li[data-chat="{ECHO}@c.us"]')  # listed at once, not after CACHE_TTL
    sent = [m for m in page.all("#thread .msg.out") if m.text == "hello from the dashboard"]
    assert len(sent) == 1  # once, though both the history and a live event bring it
    # A body that is markup renders as text and runs nothing.
    page.find("#send-text").send_keys(XSS)
    page.click("#send-form button")
    page.wait(lambda: any(m.text == XSS for m in page.all("#thread .msg.in")), 30)
    assert page.all("#thread img") == []
    assert browser.execute_script("return window.__pwned === undefined")
    page.shot("chats")

    receiver = Receiver()
    try:
        page.go("webhooks")
        page.wait(lambda: page.all("#session-pick option"))
        page.find("#hook-url").send_keys(receiver.url)
        page.find('.event-pick[value="session.status"]').click()
        page.find("#hook-inline-media").click()
        page.click("#create-webhook button[type=submit]")
        row = f'tr[data-webhook="{receiver.url}"]'
        page.wait(lambda: page.all(row))
        [made] = [w for w in live.call("GET", "/sessions/dash1/webhooks").json()
                  if w["url"] == receiver.url]
        assert made["inlineMedia"] is True
        assert set(made["events"]) == {"message.received", "session.status"}
        page.click(f'{row} [data-action="Test"]')
        page.wait(lambda: "delivered (HTTP 200)" in page.text(f"{row} .test-result"), 30)
        assert [body["event"] for body in receiver.received] == ["test"]
        # A real event goes through the outbox and a worker: it shows among the deliveries.
        assert live.call("POST", "/sessions/dash1/messages/send-text",
                         json={"chatId": ECHO, "text": "for the webhook"}).status_code in (201, 202)
        page.wait(lambda: any(b["event"] == "message.received" for b in receiver.received), 30)

        def delivered() -> bool:
            page.click(f'{row} [data-action="Deliveries"]')
            time.sleep(0.5)
            return "message.received delivered" in page.text("#webhook-detail")

        page.wait(delivered, 30)
        assert page.all("tbody tbody") == []  # tables the page fills later are not nested
        page.shot("webhooks")
    finally:
        receiver.server.shutdown()

    page.go("keys")
    page.find("#key-name").send_keys("read-only")
    browser.execute_script("document.getElementById('key-role').value = 'viewer'")
    page.click("#create-key button")
    page.wait(lambda: page.text("#new-key").startswith("owa_k1_"))
    viewer_key = page.text("#new-key")
    page.wait(lambda: page.all('tr[data-key="read-only"]'))
    page.shot("keys")
    page.go("overview")  # the key is shown once: gone when the page is left
    page.go("keys")
    page.wait(lambda: page.all('tr[data-key="read-only"]'))
    assert page.all("#new-key") == [] and viewer_key not in browser.page_source

    page.go("infra")
    page.wait(lambda: "host-dash@test" in page.text("#main"))
    assert page.all("tbody tbody") == []
    page.shot("infra")
    page.go("overview")
    page.wait(lambda: page.text('[data-stat="Ready"]') == "1")
    page.shot("overview")

    # A viewer sees no buttons it cannot use, and no admin pages.
    page.find("#logout").click()
    page.login(viewer_key)
    for name in ("sessions", "chats"):
        page.go(name)
        page.wait(lambda: page.all('tr[data-session="dash1"]') or page.all("#session-pick option"))
        assert page.all("#main button") == [] and page.all("#main form") == [], name
    assert [a.text for a in page.all("nav a[data-page]") if a.is_displayed()] == ["Overview", "Sessions", "Chats"]
    page.shot("viewer-sessions")
    print(f"\nMEASURE linked_through_dashboard_seconds={linked_seconds:.1f}")


def test_first_load_weight_and_swagger_ui_offline(
        live_stack: LivePlatform, root_url: str, browser: webdriver.Chrome) -> None:
    live_stack.start_api()
    page = Page(browser, root_url)
    page.login(live_stack.key)
    entries = browser.execute_script(
        "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
        ".map(function (e) { return [e.name, e.transferSize]; })")
    assert all(name.startswith(root_url) for name, _ in entries), entries
    weight = sum(size for name, size in entries if "/api/" not in name)
    assert weight < 60_000  # page, stylesheet and two scripts
    print(f"\nMEASURE dashboard_first_load_bytes={weight} files={len(entries)}")

    browser.get(f"{root_url}/api/docs")
    page.wait(lambda: page.all(".swagger-ui .info .title"), 30)
    assert "OpenWA" in page.text(".swagger-ui .info .title")
    page.wait(lambda: len(page.all(".opblock")) > 20)
    names = browser.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; })")
    assert names and all(name.startswith(root_url) for name in names), names
    page.shot("api-docs")
