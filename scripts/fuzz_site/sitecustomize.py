"""Loaded by every process of `make fuzz` (PYTHONPATH): no packet may leave the machine.

Fuzzed webhook URLs name arbitrary hosts and addresses. Here every name but localhost
fails to resolve without asking a resolver, and a connection to any address that is not
loopback is refused before a packet is sent, so the SSRF guard and the delivery code run
for real while the network stays untouched.
"""
from __future__ import annotations

import ipaddress
import socket

_getaddrinfo = socket.getaddrinfo
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_LOCAL_NAMES = {"localhost", "localhost.", "ip6-localhost"}


def _literal(host: object) -> bool:
    try:
        ipaddress.ip_address(str(host).split("%")[0])
        return True
    except ValueError:
        return False


def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    name = host.decode() if isinstance(host, bytes) else host
    if name is None or str(name).lower() in _LOCAL_NAMES or _literal(name):
        return _getaddrinfo(host, *args, **kwargs)
    raise socket.gaierror(socket.EAI_NONAME, "fuzz: no DNS (loopback only)")


def _allowed(sock: socket.socket, address: object) -> bool:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return True  # Unix sockets
    host = address[0] if isinstance(address, tuple) else address
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def connect(self, address):  # type: ignore[no-untyped-def]
    if not _allowed(self, address):
        raise ConnectionRefusedError(111, "fuzz: only loopback connections")
    return _connect(self, address)


def connect_ex(self, address):  # type: ignore[no-untyped-def]
    if not _allowed(self, address):
        return 111
    return _connect_ex(self, address)


socket.getaddrinfo = getaddrinfo
socket.socket.connect = connect  # type: ignore[method-assign]
socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
