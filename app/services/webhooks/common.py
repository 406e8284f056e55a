"""What every part of the webhook service reads: the settings and the secrets' box."""
from __future__ import annotations

from flask import current_app

from app.config import Config
from app.crypto import Box


def config() -> Config:
    return current_app.config["OPENWA"]  # type: ignore[no-any-return]


def box() -> Box:
    return Box.from_config(config())
