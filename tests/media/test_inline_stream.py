"""A long inline ``base64`` is streamed to disk (app/services/media/inline.py): the stored file
is exactly the decoded bytes however the JSON escapes and chunks fall, the API holds no copy
of the body, and every refusal says what the whole-body path said, with no spool file left."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import tracemalloc

import pytest
from flask import g

from app.services.media import inline
from tests.conftest import auth
from tests.factories import assert_error, make_session
from tests.integration.conftest import wait_for

CHUNK = inline.READ_CHUNK
PDF_HEAD = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n%"


def pdf_bytes(size: int) -> bytes:
    """A PDF header and random bytes: its base64 has a '/' about every 64 characters."""
    return PDF_HEAD + os.urandom(size - len(PDF_HEAD))


def body_of(b64: str, chat: str = "15550000000", **extra: str) -> str:
    """The JSON body with ``b64`` as the raw (already escaped) characters of ``base64``."""
    rest = "".join(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in extra.items())
    return '{"chatId": "' + chat + '", "base64": "' + b64 + '"' + rest + "}"


def aligned(body: str, escape: str, boundaries: int = 3) -> str:
    """``body`` behind leading spaces so that an ``escape`` begins one character before a
    read-chunk boundary, splitting it across two reads (the body is ASCII: chars = bytes)."""
    index = body.index(escape, 2 * CHUNK)
    pad = (CHUNK - 1 - index) % CHUNK
    padded = " " * pad + body
    assert padded[index + pad] == escape[0] and (index + pad + 1) % CHUNK == 0
    assert len(padded) > boundaries * CHUNK
    return padded


@pytest.fixture
def spool_dir(tmp_path, monkeypatch):
    """Where this test's scratch folders go (the stdlib's temporary directory, redirected)."""
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def post(client, key, body, kind="document", sid="inline"):
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return client.post(f"/api/sessions/{sid}/messages/send-{kind}", data=data,
                       content_type="application/json", headers=auth(key))


# -- end to end: the stored bytes ----------------------------------------------------------
@pytest.mark.integration
def test_a_streamed_inline_send_stores_exactly_the_decoded_bytes(media_platform, spool_dir):
    platform, receiver, _ = media_platform
    platform.app.config["OPENWA"].send_wait_timeout = 10.0
    data = pdf_bytes(600_000)  # 800 kB of base64: a dozen reads
    text = base64.b64encode(data).decode()
    assert text.count("/") > 100
    bodies = {
        "plain": body_of(text),
        # JSON lets '/' be escaped: "\/" and "\u002f" decode to '/', split across reads.
        "escaped slash": aligned(body_of(text.replace("/", "\\/")), "\\/"),
        "escaped unicode": aligned(body_of(text.replace("/", "\\u002f")), "\\u002f"),
        "data url": body_of("data:application/pdf;base64," + text.replace("/", "\\/")),
    }
    for name, body in bodies.items():
        reply = platform.api("POST", "/sessions/media/messages/send-document",
                             data=body, content_type="application/json")
        assert reply.status_code == 201, (name, reply.get_json())
        stored = platform.api("GET", f"/sessions/media/messages/{reply.get_json()['messageId']}").get_json()
        assert stored["media"]["size"] == len(data), name
        got = platform.api("GET", stored["media"]["url"].removeprefix("/api"))
        assert hashlib.sha256(got.data).hexdigest() == hashlib.sha256(data).hexdigest(), name
        assert not list(spool_dir.iterdir()), name  # the scratch folder went with the request
    sent = wait_for(lambda: len(receiver.events("message.sent")) >= len(bodies)
                    and receiver.events("message.sent"), 40, 0.1, "every message.sent")
    assert {event["data"]["type"] for event in sent} == {"document"}


# -- the API process: memory and refusals ------------------------------------------------------
@pytest.fixture
def inline_session(app):
    return make_session(app, name="inline")  # not ready: a valid send ends in 409


def test_a_streamed_inline_send_holds_no_copy_of_the_body(app, client, operator_key,
                                                          inline_session, spool_dir):
    """An 8 MB document (a 10.7 MB body) through the whole request: the API allocates a few
    chunks at most, where the whole-body path held the body about three times over."""
    body = body_of(base64.b64encode(pdf_bytes(8_000_000)).decode()).encode()
    post(client, operator_key, body_of("AAAA"))  # the first request's imports, outside the count
    tracemalloc.start()
    try:
        reply = post(client, operator_key, body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_error(reply, 409, "SESSION_NOT_READY")  # parsed, spooled, checked, refused
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB for a {len(body) / 2**20:.1f} MiB body"
    assert not list(spool_dir.iterdir())


def test_over_media_max_bytes_is_413_and_leaves_no_spool_file(
        app, client, operator_key, inline_session, spool_dir):
    app.config["OPENWA"].media_max_bytes = 200_000
    # Within the body's own cap (4/3 of MEDIA_MAX_BYTES and 64 KiB), over the file's.
    long_text = base64.b64encode(pdf_bytes(220_000)).decode()
    reply = post(client, operator_key, body_of(long_text))
    body = assert_error(reply, 413, "MEDIA_TOO_LARGE")
    assert body["message"] == "The media is 220000 bytes; MEDIA_MAX_BYTES is 200000"
    assert not list(spool_dir.iterdir())
    # A schema error elsewhere in the body still comes first, as it did.
    reply = post(client, operator_key, body_of(long_text, chat="not a chat id!"))
    assert assert_error(reply, 400)["message"][0].startswith("chatId:")
    # Only base64 may be long: the rest of the body is capped (a caption is 1024 at most).
    reply = post(client, operator_key, body_of(long_text[:100_000], caption="x" * (inline.REST_MAX + 1)))
    assert assert_error(reply, 413)["message"] == "Request body is too large"
    assert not list(spool_dir.iterdir())


def test_refusals_of_a_long_string_say_what_the_whole_body_path_said(
        app, client, operator_key, inline_session, spool_dir):
    """Each long (streamed) body is answered as its short twin is, which takes the old path;
    and no scratch folder is left behind."""
    good = base64.b64encode(pdf_bytes(200_000)).decode()
    middle = len(good) // 2
    short = "QUJD" * 8

    def twins(mutate):
        return mutate(good), mutate(short)

    cases = {
        "bad character mid-stream": (twins(lambda t: t[:len(t) // 2] + "!" + t[len(t) // 2 + 1:]),
                                     ["base64: String does not match expected pattern."]),
        "padding mid-stream": (twins(lambda t: t[:len(t) // 2] + "=" + t[len(t) // 2 + 1:]),
                               ["base64: String does not match expected pattern."]),
        "not a multiple of 4": (twins(lambda t: t + "Q"),
                                ["base64: String does not match expected pattern."]),
        "a trailing newline": (twins(lambda t: t + "\\n"), ["base64: is not valid base64"]),
        "a lone surrogate": (twins(lambda t: t[:len(t) // 2] + "\\ud800" + t[len(t) // 2:]),
                             ["base64: is not valid UTF-8 text (lone surrogate)"]),
        "a bad escape": (twins(lambda t: t[:len(t) // 2] + "\\x" + t[len(t) // 2:]),
                         ["Invalid JSON body."]),
    }
    for name, ((long_text, short_text), expected) in cases.items():
        long_reply, short_reply = post(client, operator_key, body_of(long_text)), \
            post(client, operator_key, body_of(short_text))
        assert assert_error(long_reply, 400)["message"] == expected, name
        assert long_reply.get_json() == short_reply.get_json(), name
        assert not list(spool_dir.iterdir()), name
    raw_bodies = {
        "not JSON: a trailing comma": (body_of(good) + ",", "Invalid JSON body."),
        "not JSON: the string never ends": (body_of(good)[:-3], "Invalid JSON body."),
        "not JSON: a raw control character": (body_of(good[:middle] + "\t" + good[middle:]),
                                              "Invalid JSON body."),
        "not UTF-8, in the string": (body_of(good).encode()[:middle] + b"\xff"
                                     + body_of(good).encode()[middle + 1:],
                                     "body: is not valid UTF-8"),
        "not UTF-8, after it": (body_of(good).encode()[:-1] + b"\xc3}", "body: is not valid UTF-8"),
        "out of range number after it": (body_of(good)[:-1] + ', "caption": 1e999}',
                                         "caption: number is out of range"),
    }
    for name, (body, expected) in raw_bodies.items():
        reply = post(client, operator_key, body)
        assert assert_error(reply, 400)["message"] == [expected], name
        assert not list(spool_dir.iterdir()), name
    # A later base64 member is the one JSON keeps: the streamed one is dropped, as before.
    reply = post(client, operator_key, body_of(good)[:-1] + ', "base64": "!!!!"}')
    assert assert_error(reply, 400)["message"] == ["base64: String does not match expected pattern."]
    assert not list(spool_dir.iterdir())


def test_only_the_media_send_routes_are_streamed(app, operator_key, inline_session, spool_dir):
    long_text = base64.b64encode(pdf_bytes(200_000)).decode()
    body = body_of(long_text, text="hi")
    headers = auth(operator_key)
    with app.test_request_context("/api/sessions/inline/messages/send-document", method="POST",
                                  data=body, content_type="application/json", headers=headers):
        assert app.preprocess_request() is None
        assert inline.spooled() is not None and inline.spooled().file().stat().st_size == 200_000
    with app.test_request_context("/api/sessions/inline/messages/send-text", method="POST",
                                  data=body, content_type="application/json", headers=headers):
        assert app.preprocess_request() is None
        assert "inline_media_scratch" not in g and inline.spooled() is None
        from flask import request
        assert request.get_data() == body.encode()  # the body as it came, for hygiene and the view
    assert not list(spool_dir.iterdir())


# -- the scanner against the whole-body path, on many bodies -----------------------------------
def _whole_body_verdict(body: bytes, folder, limit):
    """What the old path answers: hygiene, the real schema, then spool_base64."""
    from marshmallow import ValidationError

    from app import hygiene
    from app.errors import ApiError, flatten_validation
    from app.schemas.media import SendMediaSchema
    from app.services.media.send import spool_base64

    try:
        document = hygiene.load_json(body)
    except hygiene.UnfitInput as error:
        return 400, [str(error)], None
    try:
        data = SendMediaSchema().load(document)
    except ValidationError as error:
        return 400, sorted(flatten_validation(error.messages)), None
    try:
        spool_base64(data["base64"], folder / "whole", limit)
    except ApiError as error:
        return error.status, error.message, None
    return 200, None, (folder / "whole").read_bytes()


def _streamed_verdict(body: bytes, folder, limit, read_chunk, inline_max):
    """The same, with the body through the scanner and the schema on its small document."""
    import io

    from marshmallow import ValidationError

    from app.errors import ApiError, flatten_validation
    from app.schemas.media import SendMediaSchema
    from app.services.media.send import spool_base64

    scanner = inline.Scanner(io.BytesIO(body), lambda: folder, limit, read_chunk, inline_max)
    try:
        try:
            scanner.run()
            small, file = scanner.result()
        finally:
            scanner.close()
        data = SendMediaSchema().load(json.loads(small))
        if file is None:
            spool_base64(data["base64"], folder / "small", limit)
            return 200, None, (folder / "small").read_bytes()
        return 200, None, file.file().read_bytes()
    except ValidationError as error:
        return 400, sorted(flatten_validation(error.messages)), None
    except ApiError as error:
        return error.status, error.message, None


def _generated_bodies(rnd, count):
    """Valid and broken base64, data: headers, JSON escapes, surrogates, duplicates, bad JSON."""
    import random  # noqa: F401  (rnd is a random.Random)

    inserts = ["\\ud83d\\ude00", "\\ud83d", "\\ude00", "\\\\", '\\"', "\x01", "\\x", "\\u12",
               "\\u12G4", "\t", "\\/", "\\u002f", "é", "\\n"]
    for _ in range(count):
        text = base64.b64encode(os.urandom(rnd.choice([0, 1, 2, 3, 50, 400, 3000]))).decode()
        roll = rnd.random()
        if roll < 0.1:
            text = "data:application/pdf;base64," + text
        elif roll < 0.13:
            text = "data:" + "x" * 210 + ";base64," + text
        elif roll < 0.16:
            text = "data:bad header;base64," + text
        roll = rnd.random()
        if text and roll < 0.1:
            i = rnd.randrange(len(text))
            text = text[:i] + rnd.choice("!=-_\n") + text[i + 1:]
        elif roll < 0.15:
            text += rnd.choice(["\n", "\n\n", "==", "Q"])
        raw = "".join("\\u%04x" % ord(c) if rnd.random() < 0.03 else
                      "\\/" if c == "/" and rnd.random() < 0.5 else c for c in text)
        raw = raw.replace("\n", "\\n")
        if raw and rnd.random() < 0.25:
            i = rnd.randrange(len(raw))
            if not raw[:i].endswith("\\") and "\\u" not in raw[max(0, i - 5):i]:
                raw = raw[:i] + rnd.choice(inserts) + raw[i:]
        body = body_of(raw, caption="ok é")
        roll = rnd.random()
        if roll < 0.04:
            body = body[:-1]
        elif roll < 0.07:
            body = body[:-1] + ', "base64": "' + rnd.choice(["AAAA", "!!", "\\ud800"]) + '"}'
        elif roll < 0.09:
            body = " \n" + body + "\n "
        elif roll < 0.1:
            body = body.replace('"base64"', '"base\\u0036\\u0034"', 1)
        elif roll < 0.12:
            body = body.replace('"15550000000"', "1e999", 1)
        data = body.encode("utf-8")
        if rnd.random() < 0.03:
            i = rnd.randrange(len(data))
            data = data[:i] + b"\xff" + data[i + 1:]
        yield data


@pytest.mark.parametrize("read_chunk,inline_max", [(7, 8), (13, 100), (64, 4)])
def test_the_scanner_answers_as_the_whole_body_path_at_any_chunking(tmp_path, read_chunk, inline_max):
    """Tiny reads and a tiny inline threshold make every string streamed and every escape,
    header and padding fall across reads; the verdict and the bytes must be the old path's."""
    import random

    rnd = random.Random(read_chunk * 1000 + inline_max)
    limit = 2000
    for n, body in enumerate(_generated_bodies(rnd, 400)):
        whole, streamed = tmp_path / f"w{n}", tmp_path / f"s{n}"
        whole.mkdir()
        streamed.mkdir()
        expected = _whole_body_verdict(body, whole, limit)
        assert _streamed_verdict(body, streamed, limit, read_chunk, inline_max) == expected, body[:300]
