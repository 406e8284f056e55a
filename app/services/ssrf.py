"""The SSRF guard: which URLs the platform may fetch or post to on a user's behalf.

Only globally routable addresses pass (``ipaddress``'s ``is_global``), minus an explicit
deny-list of cloud metadata endpoints. Addresses that carry an IPv4 address inside an
IPv6 one (IPv4-mapped, 6to4, Teredo, NAT64 well-known prefix) are judged by that IPv4
address. The check resolves the host name and decides before any connection is opened;
webhook registration and every delivery call it (DNS may change between the two), and
media fetches will too.
"""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Host names of cloud metadata services, refused before any DNS look-up.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "metadata.azure.com",
                            "instance-data", "instance-data.ec2.internal"})
#: Metadata addresses, refused even where ``is_global`` would let them through.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",   # AWS, GCP, Azure, OpenStack, DigitalOcean
    "169.254.170.2",     # AWS ECS task metadata
    "100.100.100.200",   # Alibaba Cloud
    "192.0.0.192",       # Oracle Cloud (classic)
    "fd00:ec2::254",     # AWS IMDS over IPv6
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeUrl(ValueError):
    """The URL may not be used; the message says why (it never repeats credentials)."""


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64), else None."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address (the server's is public anyway)
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be contacted, or None when it is globally routable."""
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    inner = embedded_ipv4(address)
    if inner is not None:
        reason = address_refusal(inner)
        return f"{address} embeds {reason}" if reason else None
    # is_global alone is not enough on every Python: 3.11 calls fec0::/10 (deprecated
    # site-local) global. Each flag below names a kind of address no webhook may reach.
    if (not address.is_global or address.is_multicast or address.is_reserved
            or address.is_loopback or address.is_link_local or address.is_unspecified
            or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)):
        return f"{address} is not a public address"
    return None


def check_url(url: str, allow_private: bool = False) -> None:
    """Raise :class:`UnsafeUrl` unless ``url`` is http(s) to a public host; opens no socket
    to the host (the only traffic is the resolver's)."""
    if any(ch in url for ch in "\r\n\t\x00") or any(ch.isspace() for ch in url):
        raise UnsafeUrl("must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("must be an http or https URL")
    if parts.username or parts.password:
        raise UnsafeUrl("must not contain credentials")
    if allow_private:
        return
    host = parts.hostname.lower().rstrip(".")
    if host in METADATA_HOSTS:
        raise UnsafeUrl("resolves to a cloud metadata address")
    try:  # an address literal is judged as it is: no resolver involved
        literal = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        literal = None
    if literal is not None:
        reason = address_refusal(literal)
        if reason:
            raise UnsafeUrl(f"resolves to a non-public address ({reason})")
        return
    try:
        infos = socket.getaddrinfo(host, port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeUrl(f"host {host!r} does not resolve") from None
    if not infos:
        raise UnsafeUrl(f"host {host!r} does not resolve")
    for info in infos:
        try:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        except ValueError:
            raise UnsafeUrl(f"host {host!r} resolves to an unusable address") from None
        reason = address_refusal(address)
        if reason:
            raise UnsafeUrl(f"resolves to a non-public address ({reason})")
