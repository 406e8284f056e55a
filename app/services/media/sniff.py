"""What a file is, judged from its bytes (``filetype``), never from what the client says.

A send names its type (image, video, audio, document, sticker); the bytes must be of that
kind, and a ``mimetype`` the client gives must agree with them. Formats the library cannot
recognise (plain text, CSV...) are accepted only as documents, under the client's mimetype
(or ``application/octet-stream``), unless that mimetype names a format it would recognise.
"""
from __future__ import annotations

import io
import mimetypes
from pathlib import Path

import filetype
from PIL import Image, UnidentifiedImageError

HEAD = 8192  # what filetype reads
#: The family of bytes each send type takes (None: any).
FAMILY = {"image": "image", "video": "video", "audio": "audio", "sticker": "image", "document": None}
#: Container formats whose specialisations filetype reports as the container.
CONTAINERS = {
    "application/zip": ("application/vnd.openxmlformats-officedocument.", "application/vnd.oasis.opendocument.",
                        "application/epub+zip", "application/java-archive", "application/vnd.android."),
    "application/x-ole-storage": ("application/msword", "application/vnd.ms-"),
    "video/mp4": ("audio/mp4", "audio/m4a", "audio/x-m4a", "audio/aac"),
    "audio/ogg": ("audio/ogg", "audio/opus"),
    "video/quicktime": ("video/mp4",),
}
KNOWN = frozenset(t.mime for t in filetype.TYPES) - {"application/octet-stream"}
STICKER_SIDE = 512


class MediaRejected(ValueError):
    """The bytes are not what the send says; the message is for the client."""


def _same(detected: str, claimed: str) -> bool:
    if detected == claimed:
        return True
    return claimed.startswith(CONTAINERS.get(detected, ()))


def check(head: bytes, kind: str, claimed: str | None) -> str:
    """The mimetype of a file whose first bytes are ``head``, sent as ``kind``; raises
    :class:`MediaRejected` when the bytes are not of that kind or contradict ``claimed``."""
    claimed = (claimed or "").split(";", 1)[0].strip().lower() or None
    found = filetype.guess(head[:HEAD])
    detected = found.mime if found is not None else None
    family = FAMILY[kind]
    if detected is None:
        if family is not None:
            raise MediaRejected(f"the bytes are not a recognisable {kind}")
        if claimed in KNOWN:
            raise MediaRejected(f"mimetype says {claimed} but the bytes are not {claimed}")
        return claimed or "application/octet-stream"
    if family is not None and not detected.startswith(family + "/") and not (
            claimed and claimed.startswith(family + "/") and _same(detected, claimed)):
        raise MediaRejected(f"the bytes are {detected}, not an {kind}"
                            if kind[0] in "aeiou" else f"the bytes are {detected}, not a {kind}")
    if claimed and not _same(detected, claimed):
        raise MediaRejected(f"mimetype says {claimed} but the bytes are {detected}")
    return claimed or detected


def default_filename(kind: str, mimetype: str, sha256: str) -> str:
    extension = mimetypes.guess_extension(mimetype) or ".bin"
    return f"{kind}-{sha256[:12]}{extension}"


def sticker_webp(source: Path, dest: Path) -> None:
    """The image as a WhatsApp sticker: WebP, at most 512×512, transparency kept."""
    try:
        with Image.open(source) as image:
            image.load()
            frame = image.convert("RGBA")
    except (UnidentifiedImageError, OSError) as error:
        raise MediaRejected(f"the sticker is not an image Pillow can read: {error}") from None
    frame.thumbnail((STICKER_SIDE, STICKER_SIDE))
    buffer = io.BytesIO()
    frame.save(buffer, format="WEBP", quality=80)
    dest.write_bytes(buffer.getvalue())
