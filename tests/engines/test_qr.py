"""QR images: segno renders them; zxing-cpp reads them back."""
from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from engines.mock import MockEngine, MockOptions
from engines.qr import data_url, render_png

zxingcpp = pytest.importorskip("zxingcpp")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode(png: bytes) -> list[str]:
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        return [result.text for result in zxingcpp.read_barcodes(image.convert("L"))]


def test_render_png_decodes_to_the_same_string() -> None:
    text = "hello, OpenWA"
    png = render_png(text)
    assert png.startswith(PNG_SIGNATURE)
    assert decode(png) == [text]


def test_render_png_decodes_a_whatsapp_style_qr_string(tmp_path: Path) -> None:
    engine = MockEngine("qr", tmp_path / "qr", MockOptions())
    engine.start()
    qr = engine.qr()
    assert qr is not None
    assert decode(render_png(qr)) == [qr]


def test_render_png_scale_sets_the_pixels_per_module() -> None:
    small = render_png("scale me", scale=2)
    large = render_png("scale me", scale=8)
    with Image.open(io.BytesIO(small)) as a, Image.open(io.BytesIO(large)) as b:
        assert b.size[0] == 4 * a.size[0]
    assert decode(small) == ["scale me"]


def test_render_png_rejects_a_scale_below_one() -> None:
    with pytest.raises(ValueError):
        render_png("x", scale=0)


def test_data_url_wraps_png_bytes_in_base64() -> None:
    png = render_png("data url")
    url = data_url(png)
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    assert base64.b64decode(url[len(prefix):], validate=True) == png
