"""The SSRF guard (app/services/ssrf.py): only globally routable addresses, no metadata
endpoint, IPv4 embedded in IPv6 judged as IPv4; refused before any connection."""
from __future__ import annotations

import ipaddress
import socket

import pytest

from app.services import ssrf, webhooks
from tests.conftest import auth

REFUSED = [
    "100.100.100.200",         # Alibaba metadata (is_global says yes: the deny-list says no)
    "169.254.169.254", "169.254.170.2", "192.0.0.192", "fd00:ec2::254",
    "100.64.0.1", "100.127.255.254",  # shared address space (RFC 6598)
    "2002:7f00:1::",           # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",       # 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo, client 192.0.2.45
    "64:ff9b::7f00:1",         # NAT64 of 127.0.0.1
    "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "fec0::1", "fec0:ffff::1",  # deprecated site-local
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "0.0.0.0", "::", "::1",
    "fe80::1", "fc00::1", "224.0.0.1", "ff02::1", "240.0.0.1", "255.255.255.255",
    "198.18.0.1", "192.0.2.1", "2001:db8::1",
]
ALLOWED = ["8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "2002:808:808::1",
           "64:ff9b::808:808"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_global_and_metadata_addresses_are_refused(address):
    assert ssrf.address_refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ALLOWED)
def test_globally_routable_addresses_pass(address):
    assert ssrf.address_refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("url", [
    "http://metadata.google.internal/computeMetadata/v1/", "http://[fd00:ec2::254]/",
    "http://100.100.100.200/latest/meta-data/", "http://[2002:7f00:1::]:8080/",
    "http://user:pw@8.8.8.8/", "ftp://8.8.8.8/", "http://8.8.8.8/a\r\nX-Injected: 1",
    "http://8.8.8.8/a b", "http://[::1", "gopher://8.8.8.8/"])
def test_check_url_refuses_without_resolving_or_connecting(monkeypatch, url):
    calls = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: calls.append(a) or [])
    monkeypatch.setattr(socket.socket, "connect", lambda *a: calls.append(a))
    with pytest.raises(ssrf.UnsafeUrl):
        ssrf.check_url(url)
    assert calls == []  # refused on the URL alone: no resolver, no socket


def test_webhooks_check_url_is_the_ssrf_guard():
    assert webhooks.check_url is ssrf.check_url
    assert webhooks.UnsafeUrl is ssrf.UnsafeUrl


@pytest.fixture
def no_network(monkeypatch):
    """A resolver that answers from a table and sockets that record connect attempts
    (and refuse them): nothing reaches the network."""
    table = {"evil.example": "100.100.100.200", "sixtofour.example": "2002:7f00:1::",
             "teredo.example": "2001:0:4136:e378:8000:63bf:3fff:fdd2",
             "fine.example": "93.184.215.14"}
    connects: list[object] = []

    def getaddrinfo(host, port, *args, **kwargs):
        address = table.get(host)
        if address is None:
            raise socket.gaierror(socket.EAI_NONAME, "not in the test table")
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    def connect(self, address):
        connects.append(address)
        raise ConnectionRefusedError(111, "test: no network")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return connects


@pytest.mark.parametrize("host", ["evil.example", "sixtofour.example", "teredo.example"])
def test_registration_refuses_a_host_resolving_to_an_internal_address(
        app, client, operator_key, no_network, host):
    sid = client.post("/api/sessions", json={"name": "ssrf"}, headers=auth(operator_key)).get_json()["id"]
    reply = client.post(f"/api/sessions/{sid}/webhooks", json={"url": f"http://{host}/hook"},
                        headers=auth(operator_key))
    assert reply.status_code == 400
    assert "non-public address" in reply.get_json()["message"][0]
    assert no_network == []
    assert client.get(f"/api/sessions/{sid}/webhooks", headers=auth(operator_key)).get_json() == []


def test_delivery_refuses_a_host_that_now_resolves_inside_before_connecting(
        app, client, operator_key, no_network):
    """DNS rebinding: the host was public at registration and is internal at delivery."""
    sid = client.post("/api/sessions", json={"name": "rebind"}, headers=auth(operator_key)).get_json()["id"]
    reply = client.post(f"/api/sessions/{sid}/webhooks", json={"url": "http://fine.example/hook"},
                        headers=auth(operator_key))
    assert reply.status_code == 201
    webhook_id = reply.get_json()["id"]
    with app.app_context():
        webhook = webhooks.get(sid, webhook_id)
        webhook.url = "http://evil.example/hook"
        result = webhooks.send_test(webhook)  # one real attempt through post_envelope
    assert result["success"] is False and "statusCode" not in result
    error = result["error"]
    assert error.startswith("refused:") and "100.100.100.200" in error
    assert no_network == []
