"""Backups on the running platform: the beat task on a real worker, a restore refused while
a session host runs, and a session that comes back ready from its restored profile."""
from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from app.backups import LiveDeployment
from app.extensions import celery_app
from app.services import backups
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ECHO = "15550000000@c.us"


def test_scheduled_backup_on_a_worker_then_restore_brings_the_session_back(platform, tmp_path):
    key = base64.b64encode(os.urandom(32)).decode()
    backup_path = tmp_path / "backups"
    config = platform.app.config["OPENWA"]
    config.encryption_key, config.backup_path = key, backup_path
    host = platform.start_host()
    session = platform.create_ready_session("kept")
    sent = platform.api("POST", "/sessions/kept/messages/send-text",
                        json={"chatId": ECHO, "text": "before the backup"})
    assert sent.status_code == 201

    platform.start("worker", ENCRYPTION_KEY=key, BACKUP_PATH=str(backup_path))
    # What beat sends at BACKUP_SCHEDULE: the task by name, routed to the backups queue.
    result = celery_app.send_task("tasks.backups.scheduled_backup").get(timeout=120)
    backup_id = result["id"]
    assert Path(result["location"]) == backup_path / backup_id
    assert (backup_path / backup_id / "manifest.json").is_file()

    assert platform.api("POST", "/sessions", json={"name": "after"}).status_code == 201
    with platform.app.app_context():
        with pytest.raises(LiveDeployment, match="host1@test"):
            backups.restore(config, backup_id)

    assert host.stop(timeout=30) == 0
    with platform.app.app_context():
        wait_for(lambda: not backups.live_deployment(config), 30, 0.2, "no live host")
        report = backups.restore(config, backup_id)
    assert report.sessions == 1

    assert platform.api("GET", "/sessions/after").status_code == 404
    platform.start_host()  # the same node name takes its sessions back, from the profile
    ready = platform.wait_status("kept", "ready", timeout=30)
    assert ready["phone"] == session["phone"]
    assert platform.session_row("kept").qr_code is None
    history = platform.api("GET", "/sessions/kept/messages?limit=50").get_json()
    assert any(m.get("body") == "before the backup" for m in history["messages"]), history
