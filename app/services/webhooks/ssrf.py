"""The SSRF guard: a webhook URL must be http(s), without credentials, and (unless
WEBHOOK_ALLOW_PRIVATE) resolve only to public addresses."""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

METADATA_HOSTS = {"metadata.google.internal", "metadata"}


class UnsafeUrl(ValueError):
    pass


def check_url(url: str, allow_private: bool) -> None:
    """Refuse credentials, non-HTTP schemes, and hosts resolving to internal addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("must be an http or https URL")
    if parts.username or parts.password:
        raise UnsafeUrl("must not contain credentials")
    if allow_private:
        return
    host = parts.hostname.lower()
    if host in METADATA_HOSTS:
        raise UnsafeUrl("resolves to a cloud metadata address")
    try:
        infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UnsafeUrl(f"host {host!r} does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if (address.is_private or address.is_loopback or address.is_link_local
                or address.is_multicast or address.is_reserved or address.is_unspecified):
            raise UnsafeUrl(f"resolves to a non-public address ({address})")
