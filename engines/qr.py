"""QR code images for the link step, rendered with segno (pure Python, no Pillow needed)."""
from __future__ import annotations

import base64
import io

import segno


def render_png(data: str, scale: int = 8) -> bytes:
    """Render ``data`` as a QR code PNG: ``scale`` pixels per module, standard quiet zone."""
    if scale < 1:
        raise ValueError("scale must be at least 1")
    # segno's default (level L, boosted when the symbol size allows) keeps the long link strings
    # in the smallest symbol, which phones read most reliably off a screen.
    code = segno.make_qr(data)
    buffer = io.BytesIO()
    code.save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


def data_url(png: bytes) -> str:
    """Wrap PNG bytes as a ``data:image/png;base64,...`` URL."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
