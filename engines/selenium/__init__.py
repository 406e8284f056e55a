"""The selenium engine: Chromium running WhatsApp Web, one browser per session.

Importing this package needs the ``selenium`` package; the registry imports it on first
lookup and leaves the engine out (softly) when that fails.
"""
from engines.selenium.engine import SeleniumEngine
from engines.selenium.options import SeleniumOptions

__all__ = ["SeleniumEngine", "SeleniumOptions"]
