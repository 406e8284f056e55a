"""Logging set-up, once per process: JSON lines for machines, text for people."""
from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from app.config import Config
from app.version import VERSION

_configured = False


class _ServiceFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.service = "openwa"
        record.version = VERSION
        return True


def configure(config: Config, force: bool = False) -> None:
    global _configured
    if _configured and not force:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ServiceFilter())
    if config.log_format == "json":
        handler.setFormatter(JsonFormatter(
            "%(levelname)s %(name)s %(message)s %(service)s %(version)s",
            rename_fields={"levelname": "level", "name": "logger"}, timestamp=True))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level.upper())
    for noisy in ("urllib3", "selenium", "kombu", "amqp"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    _configured = True
