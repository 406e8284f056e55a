"""A session host killed (kill -9) while it sends media messages: the session comes back on
another host and every media message the API accepted is sent exactly once (the mock
engine's own record), with its file."""
from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Session
from tests.integration.conftest import wait_for
from tests.media import samples

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]


def _sent(profile):
    path = profile / "sent.jsonl"
    if not path.exists():
        return []
    ids = []
    for line in path.read_text().splitlines():
        try:
            ids.append(json.loads(line)["id"])
        except (ValueError, KeyError):
            continue
    return ids


def _holder(platform, name):
    with platform.app.app_context():
        db.session.expire_all()
        return db.session.scalar(select(Session.lease_holder).where(Session.name == name))


def test_kill_9_of_the_host_mid_media_send_sends_each_message_once(media_platform, tmp_path):
    platform, _, session = media_platform
    platform.app.config["OPENWA"].send_wait_timeout = 0.0  # accept fast, send behind
    platform.start("beat")  # hands the session to the other host
    second = platform.start_host("host2@test")
    accepted: list[str] = []
    stop = threading.Event()

    def load():
        n = 0
        while not stop.is_set():
            n += 1
            reply = platform.api("POST", "/sessions/media/messages/send-image",
                                 json={"chatId": "15551230001", "base64": samples.b64(samples.png(seed=n)),
                                       "caption": f"photo {n}"})
            if reply.status_code in (201, 202):
                body = reply.get_json()
                accepted.append(body.get("id") or body["messageId"].rsplit("_", 1)[1])
            else:
                time.sleep(0.05)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(accepted) >= 10, 30, 0.05, "sends under way")
        victim = _holder(platform, "media")
        first = next(p for p in platform.procs if p.role == "host" and p is not second)
        assert victim == "host1@test"
        first.kill()  # kill -9 of its process group, sends in flight
        wait_for(lambda: _holder(platform, "media") == "host2@test"
                 and platform.request("GET", "/sessions/media")[1]["status"] == "ready",
                 40, 0.1, "the session on the other host")
        time.sleep(1.0)  # keep sending on the new host for a moment
    finally:
        stop.set()
        thread.join(30)
    profile = platform.app.config["OPENWA"].session_data_path / session["id"]
    wait_for(lambda: set(accepted) <= set(_sent(profile)), 60, 0.5, "every accepted message sent")
    sent = _sent(profile)
    assert len(sent) == len(set(sent)), "a media message was sent twice"
    assert set(sent) == set(accepted)
    history = platform.api("GET", "/sessions/media/messages?limit=100&direction=outgoing").get_json()
    assert all(m["media"]["mimetype"] == "image/png" for m in history["messages"])
