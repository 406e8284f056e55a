"""Typed SQLAlchemy models, one module per table."""
from app.models.api_key import ROLES, ApiKey
from app.models.audit import AuditEntry
from app.models.backup import Backup
from app.models.base import Base, utcnow
from app.models.host import Host
from app.models.idempotency import IdempotencyKey
from app.models.media import MediaObject, MediaRef  # noqa: F401  -- media (issue 12)
from app.models.message import FINAL_SENT, Message, MessageCount, MessageStatus
from app.models.message_action import MessageAction  # message actions (issue 13.1)
from app.models.session import RUNNING, STATUSES, STOPPED, Session, SessionStatus
from app.models.webhook import EVENTS, Webhook, WebhookDelivery

__all__ = ["EVENTS", "FINAL_SENT", "ROLES", "ApiKey", "AuditEntry", "Backup", "Base", "Host", "IdempotencyKey",
           "Message", "MessageAction", "MessageCount", "MessageStatus", "RUNNING", "STATUSES", "STOPPED", "Session",
           "SessionStatus", "Webhook", "WebhookDelivery", "utcnow"]

# -- bulk sends (issue 13.5) ---
from app.models.batch import BATCH_FINAL, Batch, BatchItem, BatchStatus, ItemStatus  # noqa: E402

__all__ += ["BATCH_FINAL", "Batch", "BatchItem", "BatchStatus", "ItemStatus"]
