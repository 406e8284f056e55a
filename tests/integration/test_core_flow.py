"""The core OpenWA flow across real processes: API → Redis → session host → database."""
from __future__ import annotations

import io
import json
import re
import threading

import pytest
import zxingcpp
from PIL import Image

from tests.integration.conftest import wait_for

pytestmark = pytest.mark.integration

ECHO = "15550000000@c.us"


def test_start_qr_scan_ready_send_and_read_back(platform):
    platform.start_host()
    assert platform.api("POST", "/sessions", json={"name": "alpha"}).status_code == 201
    started = platform.api("POST", "/sessions/alpha/start")
    assert started.status_code == 200 and started.get_json()["status"] == "initializing"

    platform.wait_status("alpha", "qr_ready")
    raw = platform.api("GET", "/sessions/alpha/qr?format=raw").get_json()["qr"]
    assert raw.startswith("2@") and raw.count(",") == 3
    png = platform.api("GET", "/sessions/alpha/qr?format=image")
    assert png.mimetype == "image/png"
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.data)))
    assert [code.text for code in decoded] == [raw]

    assert platform.api("POST", "/sessions/alpha/mock/scan").status_code == 200
    ready = platform.wait_status("alpha", "ready")
    assert ready["phone"] and ready["pushName"] and ready["connectedAt"]

    sent = platform.api("POST", "/sessions/alpha/messages/send-text",
                        json={"chatId": "15550000000", "text": "hello"})
    assert sent.status_code == 201, sent.get_json()
    body = sent.get_json()
    assert body["messageId"].startswith(f"true_{ECHO}_") and isinstance(body["timestamp"], int)

    def history():
        data = platform.api("GET", "/sessions/alpha/messages").get_json()
        return data if data["total"] == 2 else None

    data = wait_for(history, 10, message="the echo reply in the history")
    outgoing = [m for m in data["messages"] if m["direction"] == "outgoing"]
    incoming = [m for m in data["messages"] if m["direction"] == "incoming"]
    assert outgoing[0]["messageId"] == body["messageId"] and outgoing[0]["body"] == "hello"
    assert incoming[0]["body"] == "hello" and incoming[0]["from"] == ECHO
    # Acks move the stored status forward: sent → delivered → read.
    wait_for(lambda: platform.api("GET", f"/sessions/alpha/messages/{body['messageId']}")
             .get_json()["status"] == "read", 10, message="the read ack")


def test_a_hundred_sends_in_a_row_are_sent_in_order(platform):
    platform.start_host()
    session = platform.create_ready_session("order")
    platform.app.config["OPENWA"].send_wait_timeout = 0.0  # queue them all at once
    ids = []
    for n in range(100):
        reply = platform.api("POST", "/sessions/order/messages/send-text",
                             json={"chatId": "15551112222", "text": f"message {n}"})
        assert reply.status_code in (201, 202), reply.get_json()
        ids.append(reply.get_json().get("id") or reply.get_json()["messageId"].rsplit("_", 1)[1])
    sent_log = platform.app.config["OPENWA"].session_data_path / session["id"] / "sent.jsonl"

    def engine_order():
        if not sent_log.exists():
            return None
        lines = [json.loads(line) for line in sent_log.read_text().splitlines() if line.strip()]
        return lines if len(lines) >= 100 else None

    lines = wait_for(engine_order, 60, 0.2, "100 sends to reach the engine")
    assert [line["id"] for line in lines] == ids


def test_a_double_start_starts_one_engine(platform):
    platform.start_host()
    assert platform.api("POST", "/sessions", json={"name": "twice"}).status_code == 201
    results = []

    def start():
        with platform.app.test_client() as c:
            results.append(c.post("/api/sessions/twice/start", headers={"X-API-Key": platform.key})
                           .status_code)

    threads = [threading.Thread(target=start) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(results) == [200, 400, 400, 400]
    platform.wait_status("twice", "qr_ready")
    # A duplicated start command (as a redelivery would make) claims nothing new.
    from app.services import dispatch
    with platform.app.app_context():
        dispatch.send("tasks.sessions.start_session", [platform.session_row("twice").id],
                      "host.host1@test")
    row = wait_for(lambda: platform.session_row("twice"), 5)
    wait_for(lambda: platform.host_live("host1@test"), 5)
    assert row.lease_token == 1 and row.lease_holder == "host1@test"


def test_restarting_the_session_host_brings_a_ready_session_back_without_a_qr(platform):
    host = platform.start_host()
    session = platform.create_ready_session("durable")
    assert host.stop(timeout=30) == 0
    row = platform.session_row("durable")
    assert row.status == "disconnected" and row.desired_state == "running"

    platform.start_host()  # same node name: takes its sessions straight back
    ready = platform.wait_status("durable", "ready", timeout=20)
    assert ready["phone"] == session["phone"]
    assert platform.session_row("durable").qr_code is None
    reply = platform.api("POST", "/sessions/durable/messages/send-text",
                         json={"chatId": ECHO, "text": "after restart"})
    assert reply.status_code == 201


def test_max_sessions_caps_the_deployment_and_hosts_share_the_load(platform):
    platform.app.config["OPENWA"].max_sessions = 2
    platform.start_host("host1@test", SESSIONS_PER_HOST="1")
    platform.start_host("host2@test", SESSIONS_PER_HOST="1")
    for name in ("s-one", "s-two", "s-three"):
        assert platform.api("POST", "/sessions", json={"name": name}).status_code == 201
    assert platform.api("POST", "/sessions/s-one/start").status_code == 200
    platform.wait_status("s-one", "qr_ready")
    assert platform.api("POST", "/sessions/s-two/start").status_code == 200
    platform.wait_status("s-two", "qr_ready")
    refused = platform.api("POST", "/sessions/s-three/start")
    assert refused.status_code == 429 and refused.get_json()["code"] == "MAX_SESSIONS_REACHED"
    holders = {platform.session_row(n).lease_holder for n in ("s-one", "s-two")}
    assert holders == {"host1@test", "host2@test"}


def test_a_session_with_no_host_is_assigned_by_the_probe_when_one_appears(platform):
    platform.start("beat")
    platform.start("worker")  # beat only schedules: the probe runs on the default queue
    assert platform.api("POST", "/sessions", json={"name": "later"}).status_code == 201
    assert platform.api("POST", "/sessions/later/start").status_code == 200
    assert platform.session_row("later").lease_holder is None
    platform.start_host()
    platform.wait_status("later", "qr_ready", timeout=30)


def test_stop_keeps_the_link_and_logout_needs_a_new_qr(platform):
    platform.start_host()
    session = platform.create_ready_session("cycle")
    stopped = platform.api("POST", "/sessions/cycle/stop")
    assert stopped.status_code == 200 and stopped.get_json()["status"] == "disconnected"
    assert platform.api("POST", "/sessions/cycle/start").status_code == 200
    assert platform.wait_status("cycle", "ready")["phone"] == session["phone"]

    out = platform.api("POST", "/sessions/cycle/logout")
    assert out.status_code == 200 and out.get_json()["phone"] is None
    assert platform.api("POST", "/sessions/cycle/start").status_code == 200
    platform.wait_status("cycle", "qr_ready")


def test_a_message_to_another_mock_session_arrives_there(platform):
    platform.start_host()
    platform.create_ready_session("sender")
    receiver = platform.create_ready_session("receiver")
    reply = platform.api("POST", "/sessions/sender/messages/send-text",
                         json={"chatId": receiver["phone"], "text": "hi there"})
    assert reply.status_code == 201

    def arrived():
        data = platform.api("GET", "/sessions/receiver/messages?direction=incoming").get_json()
        return data["messages"] if data["total"] else None

    messages = wait_for(arrived, 10, message="the message at the receiver")
    assert messages[0]["body"] == "hi there"


def test_engine_queries_go_through_the_host(platform):
    platform.start_host()
    platform.create_ready_session("asker")
    check = platform.api("GET", "/sessions/asker/contacts/check/15550000000")
    assert check.status_code == 200 and check.get_json() == {"exists": True, "whatsappId": ECHO}
    contacts = platform.api("GET", "/sessions/asker/contacts")
    assert contacts.status_code == 200 and any(c["id"] == ECHO for c in contacts.get_json())
    assert platform.api("GET", "/sessions/asker/groups").get_json() == []


def test_engine_query_answers_are_cached_for_cache_ttl(platform):
    host = platform.start_host()
    platform.create_ready_session("cached")

    def queries_run() -> int:  # logged before a query runs, so before its answer arrives
        return len(re.findall(r"tasks\.sessions\.engine_query\[[^]]+\] received",
                              host.output())) - baseline

    baseline = 0
    baseline = queries_run()
    first = platform.api("GET", "/sessions/cached/contacts/check/15551234567")
    assert first.status_code == 200 and queries_run() == 1
    again = platform.api("GET", "/sessions/cached/contacts/check/15551234567")
    assert again.get_json() == first.get_json() and queries_run() == 1  # from the cache
    assert platform.api("GET", "/sessions/cached/contacts/check/15559876543").status_code == 200
    assert queries_run() == 2
