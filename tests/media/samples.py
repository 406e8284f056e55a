"""Small real files of every media type, made here (no bundled binaries)."""
from __future__ import annotations

import base64
import hashlib
import io
import os
import struct

from PIL import Image


def png(size: int = 64, seed: int = 1) -> bytes:
    image = Image.new("RGB", (size, size), (seed * 37 % 256, seed * 91 % 256, 120))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_of_size(target: int) -> bytes:
    """A JPEG padded with a comment segment... then random bytes after EOI to ``target``."""
    image = Image.new("RGB", (32, 32), (10, 200, 30))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    data = buffer.getvalue()
    return data + os.urandom(max(0, target - len(data)))


def pdf(extra: int = 0) -> bytes:
    body = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    return body + b"%" + os.urandom(extra).hex().encode()[:extra] if extra else body


def ogg_opus(size: int = 4096) -> bytes:
    header = b"OggS" + b"\x00\x02" + b"\x00" * 8 + struct.pack("<I", 1) + b"\x00" * 8 + b"\x01\x13"
    return header + b"OpusHead" + os.urandom(max(0, size - len(header) - 8))


def mp4(size: int = 8192) -> bytes:
    box = struct.pack(">I", 24) + b"ftypisom" + b"\x00\x00\x02\x00" + b"isomiso2"
    return box + os.urandom(max(0, size - len(box)))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
