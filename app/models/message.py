"""Messages sent and received, one row each, unique per session and WhatsApp id."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, JSONType, UTCDateTime, utcnow


class MessageStatus(StrEnum):
    """Where a message is: an outgoing one goes pending -> sending -> sent -> delivered ->
    read (or failed); an incoming one is stored as delivered. Stored as its string value."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    # -- media (issue 12): a media send whose URL the `media` queue is still downloading;
    # it becomes pending once the file is stored (never seen by the send path before that).
    PREPARING = "preparing"


MESSAGE_STATUSES = tuple(status.value for status in MessageStatus)
#: The order acks move in; an ack never moves a message backwards.
ACK_RANK: dict[str, int] = {
    MessageStatus.PENDING: 0, MessageStatus.SENDING: 1, MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3, MessageStatus.READ: 4}
#: The engine has the message: a redelivered send must not send it again.
FINAL_SENT = (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("session_id", "wa_message_id"),
        Index("ix_messages_session_time", "session_id", "timestamp", "seq"),
        Index("ix_messages_session_chat_time", "session_id", "chat_id", "timestamp", "seq"),
    )

    # An integer key keeps history paging a cheap keyset scan; `id` is the public id.
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[str] = mapped_column(String(32), unique=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    wa_message_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    chat_id: Mapped[str] = mapped_column(String(100))
    sender: Mapped[str | None] = mapped_column(String(100), nullable=True)
    recipient: Mapped[str | None] = mapped_column(String(100), nullable=True)
    from_me: Mapped[bool] = mapped_column(Boolean)
    type: Mapped[str] = mapped_column(String(20), default="text")
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    caption: Mapped[str | None] = mapped_column(Text, nullable=True)
    media: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    quoted_message_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    mentions: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.PENDING)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # -- message actions (issue 13.1): what a send carries beyond text, and what later
    # actions and events changed on the message (migration 0008_message_actions).
    #: location {latitude, longitude, description, address}, contact {contactName,
    #: contactNumber, vcard}, poll {name, options, multipleAnswers, votes {voter: [option]}},
    #: forward {fromChatId, messageId}, text {linkPreview}.
    content: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    #: {sender: emoji}, one reaction per sender as on WhatsApp; a removed one is dropped.
    reactions: Mapped[dict[str, str] | None] = mapped_column(JSONType, nullable=True)
    edited_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # epoch seconds
    deleted: Mapped[str | None] = mapped_column(String(8), nullable=True)  # "everyone" | "me"
    starred: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    pinned_until: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # epoch seconds

    @property
    def direction(self) -> str:
        return "outgoing" if self.from_me else "incoming"


class MessageCount(Base):
    """How many messages a session holds per chat and direction, kept exact by database
    triggers on ``messages`` (migration 0004) in the transaction of every insert and delete:
    the history's ``total`` is then a sum over a few rows instead of a count over all of
    them. ``chat_id``, ``from_me`` and ``session_id`` of a stored message never change."""

    __tablename__ = "message_counts"

    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"),
                                            primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    from_me: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)
