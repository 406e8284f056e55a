"""Media through the selenium engine end to end: the API, a real session host, real Chromium,
the real wa-js bundle and the WhatsApp Web stand-in. Image, document and voice note go out
through ``WPP.chat.sendFileMessage`` with the same bytes (checksums at the stand-in); an
incoming image is downloaded through ``WPP.chat.downloadMedia``, stored and served."""
from __future__ import annotations

import hashlib

import pytest

from tests.integration.conftest import Platform, wait_for
from tests.integration.test_selenium_flow import link, selenium_env
from tests.media import samples
from tests.standin import StandIn

pytestmark = [pytest.mark.selenium, pytest.mark.integration,
              pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]

PHONE = "15557000123"


def test_image_document_and_voice_note_out_and_an_image_in(
        platform: Platform, standin: StandIn, chromium: dict[str, str], tmp_path) -> None:
    store = tmp_path / "media-store"
    platform.app.config["OPENWA"].storage_local_path = store
    # A long lease: on a loaded machine Chromium's start alone has taken 16 s, longer than the
    # platform fixture's 6 s lease, and the host dropped the session it was starting.
    platform.app.config["OPENWA"].session_lease_ttl = 30
    platform.start_host(STORAGE_LOCAL_PATH=str(store), SESSION_LEASE_TTL="30",
                        **selenium_env(chromium, standin))
    link(platform, standin, "web", PHONE)

    cases = [("image", samples.png(seed=9), "image/png", {"caption": "photo"}, "image"),
             ("document", samples.pdf(300), "application/pdf", {"filename": "invoice.pdf"}, "document"),
             ("audio", samples.ogg_opus(), "audio/ogg", {"ptt": True}, "ptt")]
    for kind, data, mimetype, extra, wa_type in cases:
        reply = platform.api("POST", f"/sessions/web/messages/send-{kind}",
                             json={"chatId": "15557009999", "base64": samples.b64(data),
                                   "mimetype": mimetype, **extra})
        assert reply.status_code == 201, (kind, reply.get_json())
        wa_id = reply.get_json()["messageId"]
        at_standin = [m for m in standin.state()["sent"] if m["id"] == wa_id]
        assert len(at_standin) == 1, kind
        got = at_standin[0]
        assert got["type"] == wa_type and got["mimetype"] == mimetype
        assert got["sha256"] == samples.sha(data) and got["size"] == len(data)
        assert got.get("filename") == extra.get("filename") and got.get("caption") == extra.get("caption")

    photo = samples.png(seed=21)
    incoming = standin.incoming_media(PHONE, "15557008888", {
        "type": "image", "mimetype": "image/png", "caption": "look", "data": samples.b64(photo)})

    def stored():
        data = platform.api("GET", "/sessions/web/messages?direction=incoming").get_json()
        return data["messages"][0] if data["total"] == 1 else None

    message = wait_for(stored, 20, 0.1, "the incoming image")
    assert message["messageId"] == incoming["id"] and message["type"] == "image"
    assert message["caption"] == "look" and message["media"]["size"] == len(photo)
    served = platform.api("GET", message["media"]["url"].removeprefix("/api"))
    assert served.status_code == 200 and hashlib.sha256(served.data).hexdigest() == samples.sha(photo)
    assert served.mimetype == "image/png"
