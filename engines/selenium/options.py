"""The selenium engine's options, each named by the deployment setting that gives it."""
from __future__ import annotations

from dataclasses import dataclass

from engines.base import EngineOptions, option


@dataclass
class SeleniumOptions(EngineOptions):
    """Chromium, its driver, the wa-js bundle and how the page reports events."""

    executable_path: str | None = option("CHROMIUM_EXECUTABLE_PATH")
    driver_path: str | None = option("CHROMIUM_DRIVER_PATH")
    headless: bool = option("CHROMIUM_HEADLESS", True)
    extra_args: list[str] = option("CHROMIUM_ARGS", [])
    whatsapp_web_url: str = option("WHATSAPP_WEB_URL", "https://web.whatsapp.com/")
    wajs_bundle_path: str | None = option("WAJS_BUNDLE_PATH")
    allowed_hosts: list[str] = option("CHROMIUM_ALLOWED_HOSTS", [])  # empty: resolve every host
    command_timeout: float = option("CHROMIUM_COMMAND_TIMEOUT", 10.0)  # seconds a page call may take
    webdriver_manager: bool = option("WEBDRIVER_MANAGER", True)  # fetch a driver when the system has none
    driver_cache_dir: str | None = option("WEBDRIVER_CACHE_PATH")  # webdriver-manager's cache
    offline: bool = option("SE_OFFLINE", False)  # use only a cached driver, never download one
    event_delivery: str = option("CHROMIUM_EVENT_DELIVERY", "binding")  # "binding" (CDP) or "poll"
