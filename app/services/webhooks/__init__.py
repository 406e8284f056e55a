"""Webhooks, one module per job; this package re-exports what callers use.

- the URL guard is ``app.services.ssrf`` (shared with every outgoing fetch), re-exported;
- ``registry``: create, read, update, delete webhooks, re-encrypt their secrets;
- ``outbox``: ``emit`` an event with the change it reports, ``kick`` a drain, the sweep's
  ``due_webhooks``;
- ``delivery``: ``drain``, the workers' loop over the heads of a webhook's lines;
- ``http``: one attempt, ``post_envelope`` (envelope bytes, signature, headers), and
  ``send_test``;
- ``dead_letters``: list and redrive what used up its retries.
"""
from app.services.ssrf import UnsafeUrl, check_url
from app.services.webhooks.dead_letters import dead_letters, redrive
from app.services.webhooks.delivery import backoff, drain
from app.services.webhooks.http import (
    RESERVED_HEADERS,
    USER_AGENT,
    envelope,
    post_envelope,
    send_test,
    sign,
)
from app.services.webhooks.outbox import DELIVER_TASK, due_webhooks, emit, kick, order_key
from app.services.webhooks.registry import (
    MAX_PER_SESSION,
    create,
    delete,
    get,
    list_for,
    normalise_events,
    reencrypt_all,
    update_webhook,
)

__all__ = [
    "DELIVER_TASK", "MAX_PER_SESSION", "RESERVED_HEADERS", "USER_AGENT", "UnsafeUrl", "backoff",
    "check_url", "create", "dead_letters", "delete", "drain", "due_webhooks", "emit", "envelope",
    "get", "kick", "list_for", "normalise_events", "order_key", "post_envelope", "redrive",
    "reencrypt_all", "send_test", "sign", "update_webhook",
]
