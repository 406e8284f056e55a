"""Downloading a client's media URL, on the ``media`` queue only (never on a session host).

The SSRF guard of the webhooks (``app.services.ssrf``) judges the URL and every redirect
target before any connection to it; the download is streamed to a file and cut off at
MEDIA_MAX_BYTES whatever ``Content-Length`` claimed, and at MEDIA_FETCH_TIMEOUT in all.
"""
from __future__ import annotations

import posixpath
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import requests

from app.config import Config
from app.services.media import TooLarge
from app.services.media.storage import CHUNK
from app.services.ssrf import UnsafeUrl, check_url

MAX_REDIRECTS = 5
USER_AGENT = "OpenWA-Media/1.0"


class FetchFailed(Exception):
    """The URL could not be downloaded; the message says why (never the URL's credentials)."""


def filename_of(url: str) -> str | None:
    name = posixpath.basename(unquote(urlsplit(url).path))
    return name[:200] or None


def download(config: Config, url: str, dest: Path) -> str:
    """Download ``url`` into ``dest``; the final URL (after redirects). Raises UnsafeUrl,
    TooLarge or FetchFailed."""
    deadline = time.monotonic() + config.media_fetch_timeout
    limit = config.media_max_bytes
    with requests.Session() as http:
        http.trust_env = False  # no proxy from the environment: the guard judged this host
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, config.media_allow_private)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchFailed(f"timed out after {config.media_fetch_timeout:g} s")
            try:
                reply = http.get(url, stream=True, allow_redirects=False, timeout=remaining,
                                 headers={"User-Agent": USER_AGENT})
            except requests.Timeout:
                raise FetchFailed(f"timed out after {config.media_fetch_timeout:g} s") from None
            except requests.RequestException as error:
                raise FetchFailed(f"cannot download: {type(error).__name__}") from None
            with reply:
                if reply.is_redirect:
                    url = urljoin(url, reply.headers.get("Location", ""))
                    continue
                if reply.status_code != 200:
                    raise FetchFailed(f"the URL answered HTTP {reply.status_code}")
                declared = reply.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise TooLarge(f"the URL's file is {declared} bytes; MEDIA_MAX_BYTES is {limit}")
                size = 0
                try:
                    with dest.open("wb") as out:
                        for chunk in reply.iter_content(CHUNK):
                            size += len(chunk)
                            if size > limit:
                                raise TooLarge(f"the URL sent more than MEDIA_MAX_BYTES ({limit} bytes)")
                            if time.monotonic() > deadline:
                                raise FetchFailed(f"timed out after {config.media_fetch_timeout:g} s")
                            out.write(chunk)
                except requests.RequestException as error:
                    raise FetchFailed(f"the download broke off: {type(error).__name__}") from None
                return url
        raise FetchFailed(f"more than {MAX_REDIRECTS} redirects")


__all__ = ["FetchFailed", "UnsafeUrl", "download", "filename_of"]
