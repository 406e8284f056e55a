"""What every part of the webhook service reads: the settings and the secrets' box."""
from __future__ import annotations

from app.config import Config, settings
from app.crypto import Box


def config() -> Config:
    return settings()


def box() -> Box:
    return Box.from_config(config())
