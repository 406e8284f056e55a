"""Incoming media is stored off the host's timer thread (app/services/media/offload.py): the
events before a message with a file apply at once, the rest wait — in order — until the
file is stored, and nothing of the session is polled meanwhile (the host's drain)."""
from __future__ import annotations

import threading

from app.config import Config
from app.services.media import offload
from app.services.media import storage as storage_module
from engines.base import EngineEvent, EventKind
from tests.media import samples


class SlowStore(storage_module.LocalMediaStorage):
    """Holds every put until ``release`` is set (a big upload to a slow bucket)."""

    def __init__(self, root, release: threading.Event) -> None:
        super().__init__(root)
        self.release = release

    def put(self, sha256, path, mimetype):
        assert self.release.wait(10)
        super().put(sha256, path, mimetype)


def _message(n: int, media=None) -> EngineEvent:
    data = {"id": f"false_1555@c.us_{n}", "chatId": "1555@c.us", "type": "video" if media else "text",
            "body": None if media else f"text {n}", "timestamp": 1}
    if media:
        data["media"] = media
    return EngineEvent(EventKind.MESSAGE, data)


def test_the_events_after_a_file_wait_for_it_and_keep_their_order(tmp_path, monkeypatch):
    release = threading.Event()
    config = Config.from_env({"DATA_PATH": str(tmp_path / "data")})
    store = SlowStore(tmp_path / "store", release)
    monkeypatch.setattr(offload, "open_storage", lambda cfg: store)
    video = samples.mp4(3 * 1024 * 1024)
    (tmp_path / "video.mp4").write_bytes(video)
    events = [_message(1), _message(2, {"mimetype": "video/mp4", "path": str(tmp_path / "video.mp4")}),
              _message(3), EngineEvent(EventKind.ACK, {"messageId": "x", "ack": "read"})]

    now = offload.start(config, "s1", events)
    assert now == events[:1]  # the text before the video applies at once
    assert offload.waiting("s1") and offload.take("s1") is None  # storing: the rest waits
    assert offload.start(config, "s2", [_message(9)]) == [_message(9)]  # another session goes on
    release.set()
    later = None
    for _ in range(200):
        later = offload.take("s1")
        if later is not None:
            break
        threading.Event().wait(0.05)
    assert later is not None and not offload.waiting("s1")
    assert [e.data.get("id") for e in later] == [e.data.get("id") for e in events[1:]]
    stored = later[0].data["media"]["stored"]
    assert stored["sha256"] == samples.sha(video) and stored["size"] == len(video)
    assert store.path(stored["sha256"]).read_bytes() == video


def test_a_file_over_the_cap_is_kept_as_metadata_only(tmp_path):
    config = Config.from_env({"DATA_PATH": str(tmp_path / "data"), "MEDIA_MAX_BYTES": "1000",
                              "STORAGE_LOCAL_PATH": str(tmp_path / "store")})
    (tmp_path / "big").write_bytes(samples.pdf(5000))
    result = offload.store_file(config, {"mimetype": "application/pdf", "path": str(tmp_path / "big")})
    assert "sha256" not in result and result["omitted"] == "larger than MEDIA_MAX_BYTES"
    assert not (tmp_path / "store").exists()
