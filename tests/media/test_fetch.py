"""URL downloads of media (app/services/media/fetch.py): the SSRF guard refuses private and
metadata targets — also behind a redirect — before any connection to them; the size cap
holds whatever the server says; the API refuses a private URL with a 400 at once."""
from __future__ import annotations

import socket

import pytest

from app.config import Config
from app.services import ssrf
from app.services.media import TooLarge
from app.services.media import fetch as fetch_module
from app.services.media.fetch import FetchFailed, download
from tests.media import samples
from tests.media.conftest import FileServer


def _config(**values):
    config = Config.from_env({"DATA_PATH": "/tmp/unused"})
    for name, value in values.items():
        setattr(config, name, value)
    return config


@pytest.mark.parametrize("url", ["http://10.0.0.1/a.png", "http://169.254.169.254/latest/meta-data/",
                                 "http://127.0.0.1:9/x.jpg", "http://[::1]/a", "http://metadata.google.internal/",
                                 "http://[::ffff:192.168.0.1]/a", "file:///etc/passwd"])
def test_private_and_metadata_urls_are_refused_before_any_connection(monkeypatch, tmp_path, url):
    attempts = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: attempts.append(a) or [])
    monkeypatch.setattr(socket.socket, "connect", lambda *a: attempts.append(a))
    with pytest.raises(ssrf.UnsafeUrl):
        download(_config(), url, tmp_path / "out")
    assert attempts == [] and not (tmp_path / "out").exists()


def test_a_name_that_resolves_to_a_private_address_is_refused(monkeypatch, tmp_path):
    resolved = []

    def resolver(host, *args, **kwargs):
        resolved.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.8.7", 80))]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("connected"))
    with pytest.raises(ssrf.UnsafeUrl, match="non-public"):
        download(_config(), "http://cdn.example.test/photo.jpg", tmp_path / "out")
    assert resolved == ["cdn.example.test"]


def test_a_redirect_to_a_private_address_is_refused_before_following_it(monkeypatch, tmp_path):
    with FileServer() as files:
        files.routes["/start"] = (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"")
        first = files.url("/start")
        real_check = ssrf.check_url
        checked = []

        def guard(url, allow_private=False):
            checked.append(url)
            if url == first:  # the test server itself is on loopback: let only it through
                return
            real_check(url, allow_private)

        monkeypatch.setattr(fetch_module, "check_url", guard)
        with pytest.raises(ssrf.UnsafeUrl, match="metadata"):
            download(_config(), first, tmp_path / "out")
        assert checked == [first, "http://169.254.169.254/latest/meta-data/"]
        assert files.hits == ["/start"]


def test_the_size_cap_holds_whatever_the_server_says(tmp_path):
    config = _config(media_allow_private=True, media_max_bytes=10_000)
    with FileServer() as files:
        files.routes["/says-small"] = (200, {"Content-Length": "omit"}, samples.pdf() + b"x" * 50_000)
        files.routes["/says-big"] = (200, {"Content-Length": "999999999"}, b"%PDF-")
        fine = samples.pdf(100)
        files.routes["/fine"] = (200, {}, fine)
        with pytest.raises(TooLarge, match="more than MEDIA_MAX_BYTES"):
            download(config, files.url("/says-small"), tmp_path / "a")
        with pytest.raises(TooLarge, match="999999999 bytes"):
            download(config, files.url("/says-big"), tmp_path / "b")
        download(config, files.url("/fine"), tmp_path / "c")
        assert (tmp_path / "c").read_bytes() == fine
        with pytest.raises(FetchFailed, match="HTTP 404"):
            download(config, files.url("/nothing"), tmp_path / "d")


def test_the_api_refuses_a_private_url_at_once(client, operator_key, app):
    from tests.conftest import auth
    with app.app_context():
        from app.extensions import db
        from app.models import Session
        db.session.add(Session(name="ssrf", status="ready", desired_state="running"))
        db.session.commit()
    for url in ("http://10.0.0.1/a.png", "http://169.254.169.254/x.png"):
        reply = client.post("/api/sessions/ssrf/messages/send-image", headers=auth(operator_key),
                            json={"chatId": "15550000000", "url": url})
        assert reply.status_code == 400, reply.get_json()
        assert "non-public" in reply.get_json()["message"][0] or "metadata" in reply.get_json()["message"][0]
