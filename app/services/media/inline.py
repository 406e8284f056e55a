"""Inline media sends, streamed: the ``base64`` of a media send goes to disk in chunks, so the
API never holds a large body in memory (issue 12, "never holds a large body in memory twice").

Why this module: a 15 MB document sent inline is a ~20 MB JSON body, and the usual path held it
about three times over (the raw bytes, hygiene's decoded text and parsed document, webargs'
own parse), for each concurrent client. The well-kept streaming JSON parsers on PyPI cannot
help here: json-stream (2.5) and ijson (3.6) hand a string value over only whole, once its
closing quote is read (their open requests daggaz/json-stream#45 and ICRAR/ijson#162). So this
is a scanner limited to one job, not a JSON parser:

- For the media send views (``STREAMS_BASE64`` on the view class), a ``before_request`` hook
  installed *before* :mod:`app.hygiene` reads the body in ``READ_CHUNK`` pieces, decoding UTF-8
  incrementally. It only tracks where strings and containers begin and end, to find the value
  of the top-level ``base64`` member; everything else is copied to a small document.
- A ``base64`` string of more than ``INLINE_MAX`` characters is unescaped (JSON escapes such as
  ``\\/`` included, split anywhere across chunks), checked against the schema's rules (alphabet,
  groups of 4, padding, the optional ``data:`` URL header) and decoded to ``upload`` in a
  private scratch folder, the place and format :func:`~app.services.media.send.spool_base64`
  uses. Over MEDIA_MAX_BYTES it stops writing and only counts. A shorter string stays in the
  document as it was, so small sends take exactly the old path.
- The small document, with a 4-character stand-in where the long string was (``AAAA`` if it
  passed the pattern, ``!!!!`` if not, so the schema reports it as it always did), replaces the
  request's stream: hygiene, then flask-smorest's ``@blp.arguments`` parse and validate it as
  before. Everything but the long string is capped at ``REST_MAX`` (413 past it).
- The view takes the file with :func:`spooled`; a decoded size over MEDIA_MAX_BYTES (413) or a
  string the pattern admits but ``spool_base64`` refuses (400) is raised there, at the point
  where ``spool_base64`` raises it, so the order of answers is unchanged. The scratch folder is
  removed when the request ends, whatever the answer.

What the whole-body checks said is kept: invalid UTF-8 anywhere ("body: is not valid UTF-8"),
malformed JSON ("Invalid JSON body."), a lone surrogate in the string; the rest (depth,
numbers, the other strings) is hygiene's own check of the small document.
"""
from __future__ import annotations

import base64
import codecs
import io
import json
import re
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from flask import Flask, g, request
from webargs.core import is_json
from werkzeug.exceptions import RequestEntityTooLarge

from app import hygiene
from app.config import settings
from app.errors import ApiError, BadRequest
from app.schemas.media import BASE64_BODY_CHARS, DATA_URL_PATTERN
from app.services import media

READ_CHUNK = 64 * 1024  # bytes read from the client at a time
INLINE_MAX = 64 * 1024  # a base64 string up to this many characters stays in the document
REST_MAX = 256 * 1024  # the document without the streamed string (a legitimate one: < 8 KiB)
HEADER_MAX = 64 * 1024  # the longest data: URL header looked at
SHORT = 8  # a streamed string of fewer characters (once unescaped) goes to the schema whole
FIELD = "base64"
PASSED, FAILED = '"AAAA"', '"!!!!"'  # stand-ins: one the schema's pattern admits, one it does not
LONE_SURROGATE = '"\\udc00"'  # and one hygiene refuses, as it refused the string

INVALID_JSON = "Invalid JSON body."  # hygiene's (and webargs') words
NOT_UTF8 = "body: is not valid UTF-8"
NOT_BASE64 = "base64: is not valid base64"  # spool_base64's

_TOKEN = re.compile(r'\s+|[{}\[\]:,]|"[^"\\]*(?:\\.[^"\\]*)*"|[^\s"{}\[\]:,]+', re.DOTALL)
_NESTED = re.compile(r'[^"{}\[\]]+|[{}\[\]]|"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_ALPHABET = re.compile(f"[{BASE64_BODY_CHARS}]*")
_LAST_GROUP = re.compile(f"[{BASE64_BODY_CHARS}]{{4}}|[{BASE64_BODY_CHARS}]{{3}}=|[{BASE64_BODY_CHARS}]{{2}}==")
_DATA_URL = re.compile(DATA_URL_PATTERN)
_HIGH_SURROGATE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}")


def body_limit() -> int:
    """Inline base64 is 4/3 of MEDIA_MAX_BYTES, plus the rest of the JSON."""
    return settings().media_max_bytes * 4 // 3 + 64 * 1024


@dataclass
class Spooled:
    """The decoded file of a streamed ``base64``, or why ``spool_base64`` would refuse it."""

    path: Path
    error: ApiError | None = None

    def file(self) -> Path:
        if self.error is not None:
            raise self.error
        return self.path


def spooled() -> Spooled | None:
    """The current request's streamed ``base64`` (None when it came inline as usual)."""
    found: Spooled | None = g.get("inline_media")
    return found


class _Base64File:
    """Checks the unescaped characters of a long ``base64`` string against the schema's pattern
    as they come and decodes them to ``path``; stops writing past ``limit`` bytes."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path, self.limit = path, limit
        self.out: IO[bytes] | None = path.open("wb")
        self.head: str | None = ""  # the first characters, until the data: header is settled
        self.carry = ""  # characters not decoded yet (the last group waits: it may be padded)
        self.count, self.tail = 0, ""  # what spool_base64's decoded_size reads: length, end
        self.written = 0
        self.newline = False  # a trailing newline: the pattern admits it ($)
        self.refused = False  # the pattern admits it, spool_base64 does not
        self.failed = False  # the pattern does not admit it

    def feed(self, text: str) -> None:
        if self.failed or not text:
            return
        if self.head is not None:
            self.head += text
            head = self.head
            if ("data:".startswith(head) or (head.startswith("data:") and "," not in head)) \
                    and len(head) < HEADER_MAX:
                return  # perhaps a data: header, not complete yet
            self.head = None
            text = self._header(head)
        self._body(text)

    def _header(self, head: str) -> str:
        """``head`` less its ``data:...;base64,`` header, where spool_base64 strips it."""
        if not head.startswith("data:"):
            return head
        comma = head.find(",")
        if comma < 0 or not _DATA_URL.fullmatch(head, 0, comma + 1):
            self._fail()  # (as is a header longer than HEADER_MAX)
            return ""
        if comma >= 200:  # spool_base64 looks for the comma in the first 200 characters only
            self.count, self.tail = comma + 1, head[comma - 1:comma + 1]
            self._refuse()
        return head[comma + 1:]

    def _body(self, text: str) -> None:
        if self.failed or not text:
            return
        if self.newline:
            self._fail()  # anything after the newline
            return
        self.count += len(text)
        self.tail = (self.tail + text[-2:])[-2:]
        if text[-1] == "\n":
            self.newline = True
            self._refuse()
            text = text[:-1]
        if "\n" in text:
            self._fail()
            return
        carry = self.carry + text
        ready = len(carry) // 4 * 4
        if ready == len(carry):
            ready -= 4  # the last complete group may be the padded one
        if ready <= 0:
            self.carry = carry
            return
        chunk, self.carry = carry[:ready], carry[ready:]
        if not _ALPHABET.fullmatch(chunk):
            self._fail()
            return
        self._write(chunk)

    def _write(self, chunk: str) -> None:
        if self.out is None:
            return
        data = base64.b64decode(chunk)
        self.written += len(data)
        if self.written > self.limit:
            self._close(keep=False)
        else:
            self.out.write(data)

    def _close(self, keep: bool) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None
            if not keep:
                self.path.write_bytes(b"")  # nothing kept of a file that will not be sent

    def _refuse(self) -> None:
        self.refused = True
        self._close(keep=False)

    def _fail(self) -> None:
        self.failed = True
        self._close(keep=False)

    def finish(self) -> Spooled | None:
        """The file, or None when the pattern does not admit the string (the schema says so)."""
        if self.head is not None:
            head, self.head = self.head, None
            self._body(self._header(head))
        if not self.failed and self.carry:
            if _LAST_GROUP.fullmatch(self.carry):
                self._write(self.carry)
            else:
                self._fail()
        self._close(keep=True)
        if self.failed:
            return None
        size = self.count // 4 * 3 - self.tail.count("=")  # spool_base64's decoded_size
        if size > self.limit:
            return Spooled(self.path, ApiError(
                f"The media is {size} bytes; MEDIA_MAX_BYTES is {self.limit}",
                status=413, code="MEDIA_TOO_LARGE"))
        if self.refused:
            return Spooled(self.path, BadRequest([NOT_BASE64]))
        return Spooled(self.path)


class Scanner:
    """One pass over the body: the small document, and the long ``base64`` string to a file."""

    def __init__(self, stream: IO[bytes], folder_of: Any, limit: int,
                 read_chunk: int = READ_CHUNK, inline_max: int = INLINE_MAX) -> None:
        self.stream, self.folder_of, self.limit = stream, folder_of, limit
        self.read_chunk, self.inline_max = read_chunk, inline_max
        self.decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.buf, self.pos, self.eof = "", 0, False  # text read, how much of it is used
        self.document: list[str] = []
        self.size = 0
        self.stack: list[str] = []
        self.expect_key = False  # the next string at depth 1 is a key
        self.key: Any = None  # the key whose value comes next (after its colon)
        self.after_colon = False
        self.streamed_at: int | None = None  # the document piece that stands in for the string
        self.later_duplicate = False  # another top-level base64 after it: that one counts
        self.file: _Base64File | None = None
        self.syntax_error = False
        self.surrogate = False
        self.unescaped = ""  # the string's first characters (all of a short one)

    # -- input
    def _read(self) -> bool:
        if self.pos:
            self.buf, self.pos = self.buf[self.pos:], 0
        if self.eof:
            return False
        data = self.stream.read(self.read_chunk)
        try:
            if not data:
                self.eof = True
                self.buf += self.decoder.decode(b"", final=True)
                return True
            self.buf += self.decoder.decode(data)
        except UnicodeDecodeError:
            raise BadRequest([NOT_UTF8]) from None
        return True

    def _emit(self, text: str) -> None:
        self.size += len(text)
        if self.size > REST_MAX:
            raise RequestEntityTooLarge()
        self.document.append(text)

    # -- structure
    def run(self) -> None:
        self._read()
        while True:
            if self.pos >= len(self.buf):
                if not self._read():
                    return
                continue
            if self.syntax_error:
                self.buf, self.pos = "", 0  # the rest is only checked for UTF-8
                continue
            if self._at_base64_value() and self.buf[self.pos] == '"' and self.streamed_at is None:
                self.buf, self.pos = self.buf[self.pos:], 0
                if not self._base64_value():
                    self._read()
                continue
            # Inside a nested value only strings and brackets matter: long runs go at once.
            nested = bool(self.stack) and self.stack != ["{"]
            match = (_NESTED if nested else _TOKEN).match(self.buf, self.pos)
            # A token that reaches the end of what was read may go on (a number, a space);
            # a string is whole once matched (its closing quote), a bracket always is.
            incomplete = match is None or (not nested and match.end() == len(self.buf)
                                           and self.buf[self.pos] not in '"{}[]:,')
            if incomplete and not self.eof:
                if len(self.buf) - self.pos > REST_MAX:
                    raise RequestEntityTooLarge()
                self._read()
                continue
            if match is None:  # a string that never ends: json.loads says so below
                self._emit(self.buf[self.pos:])
                self.buf, self.pos = "", 0
                continue
            token = match.group()
            self.pos = match.end()
            self._emit(token)
            self._track(token)

    def _at_base64_value(self) -> bool:
        """Whether the next token is the value of the top-level base64 (a second one is
        part of the rest: JSON keeps the last, and so do hygiene and the schema)."""
        return self.after_colon and self.key == FIELD and self.stack == ["{"]

    def _track(self, token: str) -> None:
        if token[0].isspace():
            return
        top_object = self.stack == ["{"]
        if top_object and self.after_colon:
            self.after_colon = False  # the value's first token
        if token in ("{", "["):
            self.stack.append(token)
            self.expect_key = self.stack == ["{"]
        elif token in ("}", "]"):
            if self.stack:
                self.stack.pop()
        elif token == ":" and top_object:
            self.after_colon = True
        elif token == "," and top_object:
            self.expect_key = True
        elif token[0] == '"' and top_object and self.expect_key:
            self.expect_key = False
            try:
                self.key = json.loads(token)
            except ValueError:
                self.key = None
            if self.key == FIELD and self.streamed_at is not None:
                self.later_duplicate = True

    def _base64_value(self) -> bool:
        """At the opening quote of the top-level base64 value: keep a short string in the
        document or stream a long one (True), or ask for more input first (False)."""
        match = _TOKEN.match(self.buf)
        if match is not None and match.end() <= self.inline_max + 2:
            token = match.group()
            self.buf = self.buf[match.end():]
            self._emit(token)
            self._track(token)
            return True
        if match is None and len(self.buf) <= self.inline_max + 2 and not self.eof:
            return False
        self.after_colon = False
        self.buf = self.buf[1:]
        self.file = _Base64File(self.folder_of() / "upload", self.limit)
        self._stream_string()
        self.streamed_at = len(self.document)
        self._emit(FAILED)  # PASSED once the file is finished, if the pattern admits it
        return True

    # -- the long string
    def _stream_string(self) -> None:
        assert self.file is not None
        while True:
            end = self._closing_quote()
            if end is not None:
                self._decode(self.buf[:end])
                self.buf = self.buf[end + 1:]
                return
            if self.eof:
                self.syntax_error = True  # the string never ends
                self.buf = ""
                return
            cut = self._complete_escapes(self.buf)
            self._decode(self.buf[:cut])
            self.buf = self.buf[cut:]
            if self.syntax_error:
                return
            self._read()

    def _closing_quote(self) -> int | None:
        start = 0
        while True:
            end = self.buf.find('"', start)
            if end < 0:
                return None
            slashes = 0
            while end - slashes > 0 and self.buf[end - slashes - 1] == "\\":
                slashes += 1
            if slashes % 2 == 0:
                return end
            start = end + 1

    @staticmethod
    def _complete_escapes(text: str) -> int:
        """How much of ``text`` ends on whole escapes: an escape cut short waits for the rest,
        a high surrogate (\\uD83D) for the low one that may follow."""
        cut = len(text)
        for _ in range(2):
            back = text.rfind("\\", max(0, cut - 6), cut)  # an escape is at most 6 long
            if back < 0:
                return cut
            run = back
            while run > 0 and text[run - 1] == "\\":
                run -= 1
            if (back - run) % 2:  # the last backslash is the escaped one of a "\\\\"
                return cut
            if back + 1 == cut or (text[back + 1] == "u" and cut - back < 6):
                cut = back  # cut short; and the escape before it may be a high surrogate
                continue
            if cut - back == 6 and _HIGH_SURROGATE.fullmatch(text, back, cut):
                return back
            return cut
        return cut

    def _decode(self, raw: str) -> None:
        if not raw:
            return
        assert self.file is not None
        if "\\" not in raw:
            text = raw
            if _CONTROL.search(raw):
                self.syntax_error = True
                return
        elif "\\\\" not in raw and raw.count("\\") == raw.count("\\/") and not _CONTROL.search(raw):
            text = raw.replace("\\/", "/")  # the usual escape in a base64 string
        else:
            try:
                text = json.loads(f'"{raw}"')
            except ValueError:
                self.syntax_error = True
                return
            if not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    self.surrogate = True
        if len(self.unescaped) < SHORT:
            self.unescaped += text[:SHORT]
        self.file.feed(text)

    def close(self) -> None:
        if self.file is not None:
            self.file._close(keep=True)

    # -- the result
    def result(self) -> tuple[bytes, Spooled | None]:
        if self.syntax_error:
            raise BadRequest([INVALID_JSON])
        spooled_file = None
        if self.file is not None:
            spooled_file = self.file.finish()
            assert self.streamed_at is not None
            if self.surrogate:  # hygiene finds it, in its own order among other faults
                self.document[self.streamed_at] = LONE_SURROGATE
            elif len(self.unescaped) < SHORT:  # long only in escapes: the schema sees it all
                self.document[self.streamed_at] = json.dumps(self.unescaped)
                spooled_file = None
            elif spooled_file is not None:
                self.document[self.streamed_at] = PASSED
        small = "".join(self.document).encode("utf-8")
        try:
            hygiene.load_json(small)
        except hygiene.UnfitInput as error:
            raise BadRequest([str(error)]) from None
        if self.later_duplicate:
            return small, None  # JSON's last member wins: the streamed one is not the value
        return small, spooled_file


_CONTROL = re.compile(r"[\x00-\x1f]")


def _streams_base64(app: Flask) -> bool:
    view = app.view_functions.get(request.endpoint or "")
    return bool(getattr(getattr(view, "view_class", None), "STREAMS_BASE64", False))


def install(app: Flask) -> None:
    """Install before :func:`app.hygiene.install`: hygiene then checks the small document."""

    @app.before_request
    def _stream_inline_media() -> None:
        if request.method != "POST" or not is_json(request.mimetype) or not _streams_base64(app):
            return
        request.max_content_length = body_limit()
        scratch = ExitStack()
        g.inline_media_scratch = scratch

        def folder() -> Path:
            return scratch.enter_context(media.scratch())

        scanner = Scanner(request.stream, folder, settings().media_max_bytes)
        try:
            scanner.run()
            small, file = scanner.result()
        finally:
            scanner.close()  # the folder itself goes at teardown, whatever the answer
        request.stream = io.BytesIO(small)  # what hygiene and webargs read from here on
        if file is not None:
            g.inline_media = file

    @app.teardown_request
    def _remove_inline_media(_error: BaseException | None) -> None:
        scratch = g.pop("inline_media_scratch", None)
        g.pop("inline_media", None)
        if scratch is not None:
            scratch.close()
