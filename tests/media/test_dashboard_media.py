"""The dashboard's chats page sends media (issue 14's leftover): a file picked in real
Chromium goes out as base64 through the same REST route, and the echo contact's copy arrives
live in the thread. Real processes (gunicorn API, session host, worker) on the mock engine."""
from __future__ import annotations

import hashlib

import pytest

from tests.integration.conftest import wait_for
from tests.live import LivePlatform
from tests.media import samples
from tests.realtime.conftest import live_stack, root_url, start_host  # noqa: F401  (fixtures)
from tests.realtime.test_dashboard import Page, browser  # noqa: F401  (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.selenium, pytest.mark.slow]

ECHO = "15550000000"


def test_the_chats_page_sends_a_picked_image_and_a_document(
        live_stack: LivePlatform, root_url: str, browser, tmp_path) -> None:  # noqa: F811
    live = live_stack
    live.env.update({"STORAGE_LOCAL_PATH": str(tmp_path / "media-store"), "MOCK_AUTO_SCAN_SECONDS": "0"})
    live.start_api()
    start_host(live, "host-media@test")
    live.start("worker")
    assert live.call("POST", "/sessions", json={"name": "dashmedia"}).status_code == 201
    assert live.call("POST", "/sessions/dashmedia/start").status_code == 200
    wait_for(lambda: live.status("dashmedia")["status"] == "qr_ready", 30, 0.1, "the QR")
    assert live.call("POST", "/sessions/dashmedia/mock/scan").status_code == 200
    wait_for(lambda: live.status("dashmedia")["status"] == "ready", 30, 0.1, "ready")

    photo, pdf = samples.png(seed=5), samples.pdf(500)
    (tmp_path / "photo.png").write_bytes(photo)
    (tmp_path / "invoice.pdf").write_bytes(pdf)
    page = Page(browser, root_url)
    page.login(live.key)
    page.go("chats")
    page.wait(lambda: page.all("#session-pick option"))
    page.find("#send-to").send_keys(ECHO)
    page.find("#send-file").send_keys(str(tmp_path / "photo.png"))
    page.find("#send-caption").send_keys("from the dashboard")
    page.click("#send-media-form button")
    # The echo contact sends the photo back: it shows in the thread, live.
    page.wait(lambda: any("[image" in m.text and "from the dashboard" in m.text
                          for m in page.all("#thread .msg.in")), 30)
    page.find("#send-file").send_keys(str(tmp_path / "invoice.pdf"))
    page.click("#send-media-form button")
    page.wait(lambda: any("invoice.pdf" in m.text for m in page.all("#thread .msg.in")), 30)
    page.shot("chats-media")

    outgoing = live.call("GET", "/sessions/dashmedia/messages?direction=outgoing").json()["messages"]
    by_type = {m["type"]: m for m in outgoing}
    assert by_type["image"]["caption"] == "from the dashboard"
    assert by_type["document"]["media"]["filename"] == "invoice.pdf"
    for kind, data in (("image", photo), ("document", pdf)):
        served = live.call("GET", by_type[kind]["media"]["url"].removeprefix("/api"))
        assert served.status_code == 200 and hashlib.sha256(served.content).hexdigest() == samples.sha(data)
