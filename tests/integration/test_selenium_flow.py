"""The selenium engine end to end: the API, a real Celery session host, real Chromium and
chromedriver, the real wa-js bundle, and the local WhatsApp Web stand-in."""
from __future__ import annotations

import io
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from engines.selenium import profile as profiles
from tests.conftest import CHROMIUM_TEST_ARGS
from tests.integration.conftest import Platform, wait_for
from tests.standin import StandIn

# One database backend is enough here: the platform's behaviour on both is proven by the
# core tests, and each Chromium costs seconds and memory on a shared machine.
pytestmark = [pytest.mark.selenium, pytest.mark.integration,
              pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]

PHONE = "15557000001"


def selenium_env(chromium: dict[str, str], standin: StandIn) -> dict[str, str]:
    return {
        "ENGINE_TYPE": "selenium",
        "WHATSAPP_WEB_URL": standin.url,
        "CHROMIUM_ALLOWED_HOSTS": "localhost",
        "CHROMIUM_EXECUTABLE_PATH": chromium["browser"],
        "CHROMIUM_DRIVER_PATH": chromium["driver"],
        "WAJS_BUNDLE_PATH": chromium["wajs"],
        "CHROMIUM_ARGS": ",".join(CHROMIUM_TEST_ARGS),
        "CHROMIUM_COMMAND_TIMEOUT": "5",
    }


def profile_of(platform: Platform, name: str) -> Path:
    return platform.app.config["OPENWA"].session_data_path / platform.session_row(name).id


# A QR after a start: Chromium's start on this machine now and then stalls past the
# engine's 30 s start bound (seen in full-suite runs, never in a lone run); the host then
# retries the start with backoff, which this wait must leave room for.
QR_AFTER_START_SECONDS = 90


def link(platform: Platform, standin: StandIn, name: str, phone: str) -> dict[str, Any]:
    assert platform.api("POST", "/sessions", json={"name": name}).status_code == 201
    assert platform.api("POST", f"/sessions/{name}/start").status_code == 200
    platform.wait_status(name, "qr_ready", timeout=QR_AFTER_START_SECONDS)
    raw = platform.api("GET", f"/sessions/{name}/qr?format=raw").get_json()["qr"]
    standin.scan(raw, phone=phone)
    return platform.wait_status(name, "ready", timeout=15)


def test_start_qr_scan_send_receive_acks_restart_and_a_killed_chromium(
        platform: Platform, standin: StandIn, chromium: dict[str, str]) -> None:
    env = selenium_env(chromium, standin)
    host = platform.start_host(**env)
    assert platform.api("POST", "/sessions", json={"name": "whatsapp"}).status_code == 201
    assert platform.api("POST", "/sessions/whatsapp/start").status_code == 200

    # The QR of the page: the raw string and the PNG carry the same value.
    platform.wait_status("whatsapp", "qr_ready", timeout=QR_AFTER_START_SECONDS)
    raw = platform.api("GET", "/sessions/whatsapp/qr?format=raw").get_json()["qr"]
    assert raw.startswith("2@") and raw.count(",") == 3
    png = platform.api("GET", "/sessions/whatsapp/qr?format=image")
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.data)))
    assert [code.text for code in decoded] == [raw]

    # The phone scans exactly what the API showed.
    standin.scan(raw, phone=PHONE, push_name="Ada")
    ready = platform.wait_status("whatsapp", "ready", timeout=15)
    assert ready["phone"] == PHONE and ready["pushName"] == "Ada"

    # Send: the stand-in receives it under our own message id.
    sent = platform.api("POST", "/sessions/whatsapp/messages/send-text",
                        json={"chatId": "15557009999", "text": "hello from OpenWA"})
    assert sent.status_code == 201, sent.get_json()
    wa_id = sent.get_json()["messageId"]
    stored = platform.api("GET", f"/sessions/whatsapp/messages/{wa_id}").get_json()
    assert wa_id == f"true_15557009999@c.us_{stored['id']}"
    received = [m for m in standin.state()["sent"] if m["id"] == wa_id]
    assert len(received) == 1 and received[0]["body"] == "hello from OpenWA"
    assert received[0]["key"] == stored["id"]

    # An incoming message lands in the history.
    incoming = standin.incoming(PHONE, "15557008888", "hello back")

    def history() -> Any:
        data = platform.api("GET", "/sessions/whatsapp/messages?direction=incoming").get_json()
        return data if data["total"] == 1 else None

    message = wait_for(history, 10, message="the incoming message")["messages"][0]
    assert message["messageId"] == incoming["id"] and message["body"] == "hello back"
    assert message["from"] == "15557008888@c.us" and message["fromMe"] is False
    # Our own send came back as a new_message too: it is stored once.
    everything = platform.api("GET", "/sessions/whatsapp/messages").get_json()
    assert everything["total"] == 2

    # Acks move the stored status forward.
    for ack, status in ((2, "delivered"), (3, "read")):
        standin.ack(wa_id, ack)
        wait_for(lambda: platform.api("GET", f"/sessions/whatsapp/messages/{wa_id}")
                 .get_json()["status"] == status, 10, message=f"the {status} ack")

    # The session host restarts: the session comes back from its profile, no QR.
    device = standin.device_for(phone=PHONE)
    assert device is not None
    loads = device.loads
    assert host.stop(timeout=30) == 0
    assert platform.session_row("whatsapp").status == "disconnected"
    platform.start_host(**env)
    platform.wait_status("whatsapp", "ready", timeout=30)
    assert device.loads == loads + 1 and device.code is None  # reloaded, never showed a QR
    assert platform.session_row("whatsapp").qr_code is None

    # Chromium is killed: the host sees it and resumes the session from the profile.
    tree = profiles.browsers_using(profiles.user_data_dir(profile_of(platform, "whatsapp")))
    pids = {process.pid for process in tree}
    main = [process for process in tree if process.ppid() not in pids]
    assert len(main) == 1, main  # one browser; the rest are its renderer, GPU, zygotes...
    os.kill(main[0].pid, signal.SIGKILL)
    wait_for(lambda: platform.session_row("whatsapp").status != "ready", 10, 0.02,
             "the host to notice the dead browser")
    platform.wait_status("whatsapp", "ready", timeout=30)
    assert device.code is None
    again = platform.api("POST", "/sessions/whatsapp/messages/send-text",
                         json={"chatId": "15557009999", "text": "still here"})
    assert again.status_code == 201, again.get_json()


def test_a_phone_logout_stops_the_session_and_delete_kills_the_browser_first(
        platform: Platform, standin: StandIn, chromium: dict[str, str]) -> None:
    platform.start_host(**selenium_env(chromium, standin))
    link(platform, standin, "gone", "15557000002")
    data_dir = profiles.user_data_dir(profile_of(platform, "gone"))
    assert data_dir.is_dir() and profiles.browsers_using(data_dir)

    standin.logout_from_phone("15557000002")
    wait_for(lambda: platform.session_row("gone").desired_state == "stopped", 10,
             message="the session to stop")
    row = platform.session_row("gone")
    assert row.status == "disconnected" and row.last_error == "logged out from the phone"
    assert row.phone is None
    assert not data_dir.exists() and profiles.browsers_using(data_dir) == []

    # Started again, it needs a new QR; deleted, its browser goes before its profile.
    assert platform.api("POST", "/sessions/gone/start").status_code == 200
    platform.wait_status("gone", "qr_ready", timeout=QR_AFTER_START_SECONDS)
    assert profiles.browsers_using(data_dir)
    profile = profile_of(platform, "gone")
    assert platform.api("DELETE", "/sessions/gone").status_code == 204
    assert profiles.browsers_using(data_dir) == [] and not profile.exists()
