"""The OpenWA API package.

Importing ``app`` (or a leaf such as ``app.common``, which ``celeryconfig.py`` reads)
imports nothing else: the factory lives in ``app.factory`` and is loaded on first use of
``app.create_app``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.factory import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from app.factory import create_app

        return create_app
    raise AttributeError(f"module 'app' has no attribute {name!r}")
