"""app.embedded_redis.free_port: the port a server started next will listen on (the embedded
Redis of `make run`, and every server the live tests and benchmarks start) is picked below
the kernel's ephemeral range, where the machine's outgoing connections cannot take it
between the pick and the server's bind."""
from __future__ import annotations

import socket

import pytest

from app import embedded_redis
from app.embedded_redis import PICK_FLOOR, free_port


def test_a_picked_port_is_below_the_ephemeral_range_and_free() -> None:
    floor = embedded_redis._ephemeral_floor()
    assert floor > PICK_FLOOR
    for _ in range(20):
        port = free_port()
        assert PICK_FLOOR <= port < floor
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # nothing listens there


def test_a_port_someone_listens_on_is_never_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy, free = taken.getsockname()[1], free_port()
        picks = iter([busy, busy, free])
        monkeypatch.setattr(embedded_redis.random, "randrange", lambda low, high: next(picks, free))
        monkeypatch.setattr(embedded_redis, "_ephemeral_floor", lambda: 65000)
        assert free_port() == free


def test_without_room_below_the_range_the_kernel_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded_redis, "_ephemeral_floor", lambda: PICK_FLOOR + 10)
    port = free_port()
    assert port > 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
