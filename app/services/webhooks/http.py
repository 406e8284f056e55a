"""One HTTP attempt: the envelope's bytes, its signature, the headers, and the POST."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from datetime import datetime, timezone
from typing import Any, Protocol

import requests

from app import metrics
from app.models import Webhook, WebhookDelivery, utcnow
from app.models.base import new_id
from app.schemas.common import HTTP_HEADER_VALUE, HTTP_TOKEN
from app.services.ssrf import UnsafeUrl, check_url
from app.services.webhooks.common import box, config

USER_AGENT = "OpenWA-Webhook/1.0"
_local = threading.local()
RESERVED_HEADERS = {"content-type", "user-agent", "x-openwa-event", "x-openwa-delivery-id",
                    "x-openwa-idempotency-key", "x-openwa-retry-count", "x-openwa-signature",
                    "host", "content-length"}


class Enveloped(Protocol):
    """What an envelope is made of: a stored delivery row, or the test event."""

    id: str
    idempotency_key: str
    session_id: str
    event: str
    data: dict[str, Any]
    occurred_at: datetime


def envelope(delivery: Enveloped, data: dict[str, Any] | None = None) -> bytes:
    """The exact bytes that are sent and signed; ``data`` in place of the delivery's own
    (its media inlined, app/services/webhooks/inline.py)."""
    body = {"event": delivery.event,
            "timestamp": delivery.occurred_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
            "sessionId": delivery.session_id, "idempotencyKey": delivery.idempotency_key,
            "deliveryId": delivery.id, "data": delivery.data if data is None else data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def request_headers(webhook: Webhook, delivery: Enveloped, body: bytes,
                    retry: int) -> dict[str, str]:
    """The webhook's own headers (decrypted; reserved names dropped), then ours."""
    headers = json.loads(box().decrypt(webhook.headers_enc)) if webhook.headers_enc else {}
    headers = {k: v for k, v in headers.items() if k.lower() not in RESERVED_HEADERS}
    headers.update({"Content-Type": "application/json", "User-Agent": USER_AGENT,
                    "X-OpenWA-Event": delivery.event, "X-OpenWA-Delivery-Id": delivery.id,
                    "X-OpenWA-Idempotency-Key": delivery.idempotency_key,
                    "X-OpenWA-Retry-Count": str(retry)})
    if webhook.secret_enc:
        headers["X-OpenWA-Signature"] = sign(box().decrypt(webhook.secret_enc), body)
    return headers


def _http(url: str) -> tuple[requests.Session, dict[str, Any]]:
    """This thread's connection pool (a receiver's connection is kept alive between posts)
    and the environment's settings for ``url`` (proxies, CA bundle), read once per URL:
    reading them per request cost more CPU than the request. Credentials from ~/.netrc
    are never added to a webhook's request."""
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
        session.trust_env = False
        _local.environment = {}
    environment: dict[str, dict[str, Any]] = _local.environment
    settings = environment.get(url)
    if settings is None:
        reader = requests.Session()  # trust_env: what requests.post would use
        settings = reader.merge_environment_settings(url, {}, None, None, None)
        settings.pop("stream", None)
        reader.close()
        if len(environment) > 1000:
            environment.clear()
        environment[url] = settings
    return session, settings


# -- requests that cannot be built -------------------------------------------------------
HEADER_NAME, HEADER_VALUE = re.compile(HTTP_TOKEN), re.compile(HTTP_HEADER_VALUE)
UNBUILDABLE = "unbuildable:"


def unbuildable(webhook: Webhook) -> str | None:
    """Why no HTTP request can be built for this webhook (rows stored before registration
    checked header names and values), or None. The reason names no header value or secret:
    it becomes the dead letter's ``lastError``."""
    if not webhook.headers_enc:
        return None
    headers = json.loads(box().decrypt(webhook.headers_enc))
    for name, value in headers.items():
        if not (isinstance(name, str) and HEADER_NAME.match(name)):
            return f"{UNBUILDABLE} a custom header name is not an HTTP token"
        if not (isinstance(value, str) and HEADER_VALUE.match(value)):
            return f"{UNBUILDABLE} a custom header value is not Latin-1 text without CR/LF"
    return None


def post_envelope(webhook: Webhook, delivery: Enveloped, retry: int,
                  data: dict[str, Any] | None = None) -> tuple[bool, int | None, str | None]:
    """POST one delivery's envelope to the webhook's URL, once: (success, status code, error).

    ``retry`` is the number of attempts made before this one (X-OpenWA-Retry-Count);
    ``data``, when given, is sent in place of the delivery's own. Redirects are not followed."""
    cfg = config()
    reason = unbuildable(webhook)
    if reason:
        return False, None, reason
    try:
        check_url(webhook.url, cfg.webhook_allow_private)  # again: DNS may have changed
    except UnsafeUrl as error:
        return False, None, f"refused: {error}"
    body = envelope(delivery, data)
    headers = request_headers(webhook, delivery, body, retry)
    try:
        session, settings = _http(webhook.url)
        reply = session.post(webhook.url, data=body, headers=headers, allow_redirects=False,
                             timeout=cfg.webhook_timeout_ms / 1000, **settings)
    except requests.Timeout:
        return False, None, f"timed out after {cfg.webhook_timeout_ms} ms"
    except (requests.RequestException, ValueError) as error:  # never the message: it may quote a header
        return False, None, f"{type(error).__name__}"
    if 200 <= reply.status_code < 300:
        return True, reply.status_code, None
    return False, reply.status_code, f"HTTP {reply.status_code}"


def send_test(webhook: Webhook) -> dict[str, Any]:
    """POST event `test` now, outside the outbox."""
    delivery = WebhookDelivery(id=new_id(), webhook_id=webhook.id,
                               session_id=webhook.session_id, event="test",
                               data={"message": "OpenWA webhook test"}, occurred_at=utcnow())
    delivery.idempotency_key = delivery.id
    ok, code, error = post_envelope(webhook, delivery, 0)
    metrics.webhook_deliveries_total.labels("test", "success" if ok else "failed").inc()
    if ok:
        return {"success": True, "statusCode": code}
    return {"success": False, "error": error, **({"statusCode": code} if code else {})}
