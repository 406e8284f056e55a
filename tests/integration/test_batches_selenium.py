"""A bulk send on the selenium engine: real Chromium, the wa-js bundle and the WhatsApp Web
stand-in receive every item once, in order, under the ids the batch gave them."""
from __future__ import annotations

import pytest

from app.services import messages
from tests.integration.conftest import Platform, wait_for
from tests.integration.test_selenium_flow import link, selenium_env
from tests.standin import StandIn

pytestmark = [pytest.mark.selenium, pytest.mark.integration,
              pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]


def test_a_batch_reaches_whatsapp_web_in_order(
        platform: Platform, standin: StandIn, chromium: dict[str, str]) -> None:
    env = selenium_env(chromium, standin)
    platform.start_host(**env)
    platform.start("worker", **env)
    link(platform, standin, "bulkweb", "15557000002")
    chats = ["15557001001@c.us", "15557001002@c.us"]
    body = {"messages": [{"chatId": chats[i % 2], "type": "text", "content": {"text": f"web {i}"}}
                         for i in range(6)], "options": {"delayBetweenMessages": 0}}
    reply = platform.api("POST", "/sessions/bulkweb/messages/send-bulk", json=body)
    assert reply.status_code == 202, reply.get_json()
    batch_id = reply.get_json()["batchId"]

    def finished():
        view = platform.api("GET", f"/sessions/bulkweb/messages/batch/{batch_id}").get_json()
        return view if view["status"] not in ("queued", "running") else None

    view = wait_for(finished, 90, 0.2, "the batch on the selenium engine")
    assert view["status"] == "completed", view
    assert view["progress"] == {"sent": 6, "failed": 0, "pending": 0, "cancelled": 0}
    keys = [messages.batch_message_id(batch_id, i) for i in range(6)]
    sent = [m for m in standin.state()["sent"] if m["key"] in keys]
    assert [(m["key"], m["body"]) for m in sent] == [(keys[i], f"web {i}") for i in range(6)]
    assert [r["messageId"] for r in view["results"]] == [
        f"true_{chats[i % 2]}_{keys[i]}" for i in range(6)]
