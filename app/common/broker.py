"""kombu's Redis transport, with one fix for a broker lost while a task is in flight.

When Redis dies, the Celery consumer calls ``Connection.collect()`` and then
``Connection.close()``. The first closes the channels and detaches the transport
(``transport.client = None``); but closing the consuming channel stops at its BRPOP, which
fails on the dead socket, and ``Connection`` still holds that channel as its default one. The
second call closes it again: the channel drops its connection pools, then restores its unacked
messages (the tasks in flight, under ``task_acks_late``) through a pool rebuilt from
``transport.client``, which is None by then. The ``AttributeError`` is no connection error,
leaves the consumer, and the worker stops ("Unrecoverable error"). An ack from a task thread
after the close fails the same way.

Here a channel keeps its (disconnected) pools when it closes: they reconnect if used again, so
that restore, or a late ack, meets Redis itself: a connection error while it is down, which
the consumer handles and retries, or the restore kombu meant when it is back.

And a channel keeps one client for its own pool: kombu built a new ``redis.Redis`` for every
publish, ack and unacked record (``conn_or_acquire``), and a client's construction fills its
table of several hundred reply parsers each time (about 60 µs here): 4 % of a session host's
CPU and 2 % of the API's at 8 clients of ``make bench`` (scale, issue 18). A client is only
its pool's front (redis-py takes a connection from the pool per command), so one serves
every call; a pool rebuilt after a close gets a new one.

Only ``redis://`` URLs use it (``celeryconfig``); imports nothing of the project.
"""
from __future__ import annotations

from typing import Any

from kombu import connection as kombu_connection
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _own_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:  # kombu keeps that one itself (``Channel.client``)
            return super()._create_client(asynchronous=True)
        pool = self.pool
        client = self._own_client
        if client is None or client.connection_pool is not pool:
            client = self._own_client = super()._create_client()
        return client

    def _disconnect_pools(self) -> None:
        pools = self._pool, self._async_pool
        super()._disconnect_pools()  # closes their sockets (and Sentinel's)
        self._pool, self._async_pool = pools


class Transport(kombu_redis.Transport):
    Channel = Channel


TRANSPORT = f"{__name__}:Transport"

# A connection prints its URL with the transport's alias ("Connected to redis://..." in the
# worker's log; Flower reads the scheme of that URL to find the broker's queues): ours is redis.
kombu_connection.resolve_aliases.setdefault(TRANSPORT, "redis")


def transport_for(url: str) -> Any:
    """The transport for a broker URL: ours for plain ``redis://``, kombu's choice otherwise."""
    return TRANSPORT if url.split("://", 1)[0] == "redis" else None
