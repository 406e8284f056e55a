"""Type checks judge the bytes, not what the client says (filetype), and stickers become WebP."""
from __future__ import annotations

import pytest
from PIL import Image

from app.services.media import sniff
from tests.media import samples


@pytest.mark.parametrize("kind,data,claimed,expected", [
    ("image", samples.png(), None, "image/png"),
    ("image", samples.png(), "image/png", "image/png"),
    ("video", samples.mp4(), "video/mp4", "video/mp4"),
    ("audio", samples.ogg_opus(), "audio/ogg", "audio/ogg"),
    ("audio", samples.ogg_opus(), None, "audio/ogg"),
    ("document", samples.pdf(), "application/pdf", "application/pdf"),
    ("document", b"name,qty\nx,1\n", "text/csv", "text/csv"),
    ("document", b"plain words", None, "application/octet-stream"),
    ("document", samples.png(), None, "image/png"),
])
def test_accepted_types_and_the_mimetype_they_are_stored_with(kind, data, claimed, expected):
    assert sniff.check(data, kind, claimed) == expected


@pytest.mark.parametrize("kind,data,claimed,says", [
    ("image", samples.pdf(), "image/png", "application/pdf, not an image"),
    ("image", b"not an image at all", "image/png", "not a recognisable image"),
    ("document", samples.png(), "application/pdf", "mimetype says application/pdf but the bytes are image/png"),
    ("document", b"plain words", "application/pdf", "mimetype says application/pdf"),
    ("video", samples.png(), None, "image/png, not a video"),
    ("audio", samples.mp4(), "audio/ogg", "the bytes are video/mp4, not an audio"),
    ("sticker", samples.pdf(), None, "not a sticker"),
])
def test_a_mimetype_or_a_type_that_lies_about_the_bytes_is_refused(kind, data, claimed, says):
    with pytest.raises(sniff.MediaRejected, match=says):
        sniff.check(data, kind, claimed)


def test_a_sticker_becomes_a_webp_of_at_most_512_pixels(tmp_path):
    source = tmp_path / "big.png"
    Image.new("RGBA", (1024, 600), (255, 0, 0, 128)).save(source)
    dest = tmp_path / "sticker.webp"
    sniff.sticker_webp(source, dest)
    with Image.open(dest) as image:
        assert image.format == "WEBP" and max(image.size) == 512 and image.mode == "RGBA"
