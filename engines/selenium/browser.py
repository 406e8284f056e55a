"""Launching and killing one session's Chromium: flags, chromedriver, timeouts, CDP.

Selenium is driven with the system chromedriver (``Service(executable_path=...)``) through a
``webdriver.Remote`` on our own :class:`ChromiumRemoteConnection`, so that

- Selenium Manager is never run (and ``SE_OFFLINE=true`` besides): nothing downloads a browser,
  and a driver is downloaded only by webdriver-manager on a machine without one (see
  :func:`driver_path`);
- every WebDriver command has a bounded HTTP timeout with urllib3's retries turned off (with
  its default retries a 5 s timeout takes 20 s on a hung page);
- we know the pids of chromedriver and of the browser, to kill an orphaned browser by pid.

Events come over a CDP websocket of our own (``driver.start_devtools()``): see
:mod:`engines.selenium.events`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chromium.remote_connection import ChromiumRemoteConnection
from selenium.webdriver.remote.client_config import ClientConfig

from engines.base import EngineError
from engines.selenium.options import SeleniumOptions

log = logging.getLogger(__name__)

DEFAULT_BROWSER = "/usr/bin/chromium"
DEFAULT_DRIVER = "/usr/bin/chromedriver"

#: Always on. Each one either keeps Chromium from talking to anything but the page, or keeps
#: an idle session's memory down (measured with scripts/bench/selenium_engine.py; see README).
BASE_FLAGS: tuple[str, ...] = (
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--metrics-recording-only",
    "--mute-audio",
    "--no-pings",
    "--password-store=basic",
    "--use-mock-keychain",
    # One page per browser: one renderer, no site-per-process split of its frames.
    "--renderer-process-limit=1",
    "--disable-site-isolation-trials",
    # The network service and the GPU thread inside the browser process: 8 processes -> 6,
    # about 20 MiB PSS and 160 MiB RSS less per session, measured.
    "--in-process-gpu",
    "--disk-cache-size=33554432",
    "--window-size=1280,900",
)
#: Chromium keeps only the last --enable-features / --disable-features switch, so these are
#: merged with any the operator adds in CHROMIUM_ARGS instead of being listed as flags.
ENABLE_FEATURES: tuple[str, ...] = ("NetworkServiceInProcess2",)
DISABLE_FEATURES: tuple[str, ...] = (
    "Translate", "OptimizationHints", "MediaRouter", "BackForwardCache",
    "AutofillServerCommunication", "CertificateTransparencyComponentUpdater",
    "InterestFeedContentSuggestions", "HeavyAdIntervention", "PrivacySandboxSettings4",
    "SpareRendererForSitePerProcess", "AudioServiceOutOfProcess",
)
#: Added in headless mode (the default).
HEADLESS_FLAGS: tuple[str, ...] = ("--headless=new", "--disable-gpu", "--hide-scrollbars")


def resolver_rules(allowed_hosts: list[str]) -> str | None:
    """``--host-resolver-rules`` that resolve only ``allowed_hosts`` (``*`` patterns allowed).

    Every other name maps to ``~NOTFOUND``: measured, Chromium otherwise looks up Google's
    update, time and search hosts even with the background-networking flags. An empty list
    or ``*`` means no rules (resolve everything).
    """
    hosts = [h.strip() for h in allowed_hosts if h.strip()]
    if not hosts or "*" in hosts:
        return None
    return "MAP * ~NOTFOUND , " + " , ".join(f"EXCLUDE {host}" for host in hosts)


def chromium_flags(options: SeleniumOptions, data_dir: Path) -> list[str]:
    flags = [f"--user-data-dir={data_dir.resolve()}", *BASE_FLAGS]
    if options.headless:
        flags.extend(HEADLESS_FLAGS)
    rules = resolver_rules(options.allowed_hosts)
    if rules:
        flags.append(f"--host-resolver-rules={rules}")
    features = {"--enable-features": list(ENABLE_FEATURES),
                "--disable-features": list(DISABLE_FEATURES)}
    for arg in options.extra_args:
        switch, _, value = arg.partition("=")
        if switch in features:
            features[switch].extend(v for v in value.split(",") if v and v not in features[switch])
        else:
            # The operator's CHROMIUM_ARGS come after ours, so they win.
            flags.append(arg)
    flags.extend(f"{switch}={','.join(names)}" for switch, names in features.items() if names)
    return flags


def driver_path(options: SeleniumOptions) -> str:
    """The chromedriver to run, in this order:

    1. CHROMIUM_DRIVER_PATH when set (an operator's explicit choice: never replaced);
    2. the system's: ``chromedriver`` on the PATH, else /usr/bin/chromedriver;
    3. webdriver-manager's (unless WEBDRIVER_MANAGER=false), cached under
       ``options.driver_cache_dir`` (DATA_PATH/webdriver); with SE_OFFLINE=true only a driver
       already in that cache, never a download.
    """
    if options.driver_path:
        if not _executable(options.driver_path):
            raise EngineError(f"chromedriver not found at {options.driver_path} (set "
                              "CHROMIUM_DRIVER_PATH, install chromium-driver, or unset it to "
                              "let webdriver-manager fetch one)")
        return options.driver_path
    system = shutil.which("chromedriver") or DEFAULT_DRIVER
    if _executable(system):
        return system
    if not options.webdriver_manager:
        raise EngineError("chromedriver not found on the PATH nor at /usr/bin/chromedriver (set "
                          "CHROMIUM_DRIVER_PATH, install chromium-driver, or allow "
                          "WEBDRIVER_MANAGER=true)")
    return managed_driver(options)


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def managed_driver(options: SeleniumOptions) -> str:
    """A chromedriver from webdriver-manager's cache under ``driver_cache_dir``, downloaded
    into it first unless ``offline`` (SE_OFFLINE=true)."""
    from webdriver_manager.chrome import ChromeDriverManager
    from webdriver_manager.core.driver_cache import DriverCacheManager
    from webdriver_manager.core.os_manager import ChromeType

    if not options.driver_cache_dir:
        raise EngineError("webdriver-manager needs a cache directory (DATA_PATH)")
    cache = DriverCacheManager(root_dir=options.driver_cache_dir)
    if options.offline:
        cached = newest_cached_driver(cache.load_metadata_content())
        if cached is None:
            raise EngineError(
                "no chromedriver on this machine and SE_OFFLINE=true: none is cached under "
                f"{options.driver_cache_dir} (install chromium-driver, set CHROMIUM_DRIVER_PATH, "
                "or start once without SE_OFFLINE to cache one)")
        return cached
    manager = ChromeDriverManager(chrome_type=ChromeType.CHROMIUM, cache_manager=cache)
    try:
        return str(manager.install())
    except Exception as error:  # noqa: BLE001 - network, archive or version lookup failures
        raise EngineError(f"webdriver-manager could not provide a chromedriver: {error}") from None


def newest_cached_driver(metadata: dict[str, Any]) -> str | None:
    """The most recently cached driver binary in webdriver-manager's ``drivers.json``
    (``{key: {"binary_path", "timestamp"}}``) that still exists, or None."""
    found = [(str(info.get("timestamp") or ""), str(info["binary_path"]))
             for info in metadata.values()
             if isinstance(info, dict) and info.get("binary_path") and _executable(info["binary_path"])]
    return max(found)[1] if found else None


def browser_path(options: SeleniumOptions) -> str:
    path = options.executable_path or shutil.which("chromium") or DEFAULT_BROWSER
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise EngineError(f"Chromium not found at {path} (set CHROMIUM_EXECUTABLE_PATH)")
    return path


@dataclass
class Browser:
    """A running chromedriver + Chromium pair for one profile."""

    driver: webdriver.Remote
    service: Service
    browser_process: psutil.Process | None
    started_at: float = field(default_factory=time.monotonic)

    @property
    def driver_pid(self) -> int | None:
        process = self.service.process
        return process.pid if process is not None else None

    @property
    def browser_pid(self) -> int | None:
        return self.browser_process.pid if self.browser_process is not None else None

    def driver_alive(self) -> bool:
        process = self.service.process
        return process is not None and process.poll() is None

    def browser_alive(self) -> bool:
        process = self.browser_process
        if process is None:
            return False
        try:
            return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False

    def tree(self) -> list[psutil.Process]:
        """The browser process and all its descendants (renderers, GPU, utilities)."""
        if not self.browser_alive():
            return []
        assert self.browser_process is not None
        with contextlib.suppress(psutil.Error):
            return [self.browser_process, *self.browser_process.children(recursive=True)]
        return []

    def kill(self) -> None:
        """Kill the browser tree and chromedriver by pid, at once; never waits on either."""
        victims = self.tree()
        with contextlib.suppress(psutil.Error):
            if self.driver_pid is not None:
                victims.append(psutil.Process(self.driver_pid))
        for process in victims:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(victims, timeout=3)
        # Reap chromedriver (our child) and close its pipes.
        process = self.service.process
        if process is not None:
            with contextlib.suppress(Exception):
                process.wait(timeout=1)
            for stream in (process.stdin, process.stdout, process.stderr):
                with contextlib.suppress(Exception):
                    if stream is not None:
                        stream.close()
        self.service.process = None  # type: ignore[assignment]

    def set_timeout(self, seconds: float) -> None:
        """The HTTP timeout of the next WebDriver commands (there are no retries)."""
        config = getattr(self.driver.command_executor, "_client_config", None)
        if isinstance(config, ClientConfig):
            config.timeout = int(max(1, round(seconds)))

    def wait_exit(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the browser process to end (a zombie has ended)."""
        deadline = time.monotonic() + timeout
        while self.browser_alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True


#: Seconds chromedriver may take to start Chromium (page calls get ``command_timeout``).
START_TIMEOUT = 30


def launch(options: SeleniumOptions, data_dir: Path, command_timeout: float) -> Browser:
    """Start chromedriver and Chromium on ``data_dir``; raise EngineError if either fails."""
    # Selenium Manager reads SE_OFFLINE from the environment; we never call it (the driver
    # path is explicit), and this keeps any code path that would from reaching the network.
    os.environ.update(SE_OFFLINE="true")
    chrome = webdriver.ChromeOptions()
    chrome.binary_location = browser_path(options)
    for flag in chromium_flags(options, data_dir):
        chrome.add_argument(flag)
    # get() returns once navigation has started: start() must not wait for WhatsApp Web.
    chrome.page_load_strategy = "none"
    chrome.set_capability("timeouts", {"script": int(command_timeout * 1000),
                                       "pageLoad": 60000, "implicit": 0})
    service = Service(executable_path=driver_path(options), port=0)
    try:
        service.start()
    except WebDriverException as error:
        raise EngineError(f"chromedriver did not start: {error.msg or error}") from None
    config = ClientConfig(
        remote_server_addr=service.service_url,
        keep_alive=True,
        # Starting Chromium may take seconds more than a page call on a busy machine (seen
        # here: 6 s, mostly waiting, while 0.9 s is usual): the start gets its own bound.
        timeout=int(max(START_TIMEOUT, round(command_timeout + 2))),
        # urllib3 retries a timed-out read 3 times by default: 4 x the timeout on a hang.
        init_args_for_pool_manager={"init_args_for_pool_manager": {"retries": False}},
        websocket_timeout=max(5.0, command_timeout),
        # The CDP client polls for each reply at this interval; its 0.1 s default makes
        # every CDP command take 100 ms.
        websocket_interval=0.002,
    )
    executor = ChromiumRemoteConnection(remote_server_addr=service.service_url,
                                        vendor_prefix="goog", browser_name="chrome",
                                        client_config=config)
    try:
        driver = webdriver.Remote(command_executor=executor, options=chrome)
    except Exception as error:  # noqa: BLE001 - any failure to start is the same to the host
        stray = _children(service)
        Browser(driver=None, service=service, browser_process=None).kill()  # type: ignore
        for process in stray:
            with contextlib.suppress(psutil.Error):
                process.kill()
        message = getattr(error, "msg", None) or str(error)
        first = message.splitlines()[0] if message else str(error)
        raise EngineError(f"Chromium did not start: {first}") from None
    config.timeout = int(max(1, round(command_timeout + 2)))  # every later call: read per request
    return Browser(driver=driver, service=service, browser_process=_browser_process(service))


def _children(service: Service) -> list[psutil.Process]:
    if service.process is None:
        return []
    with contextlib.suppress(psutil.Error):
        children: list[psutil.Process] = psutil.Process(service.process.pid).children(
            recursive=True)
        return children
    return []


def _browser_process(service: Service) -> psutil.Process | None:
    """chromedriver's Chromium child: the /usr/bin/chromium wrapper execs the browser."""
    for process in _children(service):
        with contextlib.suppress(psutil.Error):
            if service.process is not None and process.ppid() == service.process.pid:
                return process
    return None


def tree_memory(processes: list[psutil.Process]) -> dict[str, Any]:
    """RSS and PSS (bytes) summed over ``processes``; PSS shares pages fairly between them."""
    rss = pss = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            info = process.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", 0)
    return {"processes": len(processes), "rss": rss, "pss": pss}
