"""What reactions, edits, revokes and poll votes change on a stored message (issue 13.1).

Used two ways, with the same effect: by :mod:`app.services.events` for what an engine reports
(a peer reacted, the phone deleted a message), and by :mod:`app.services.message_actions` once
the engine has carried out one of our own actions. Each function stages the change and its
webhook event in the current transaction and returns the outbox targets (the caller commits).

A change is reported once: when the stored message already shows it (our own reaction that
WhatsApp Web then reports back, an event drained twice) nothing is staged and nothing is sent.
An event about a message that is not stored (older than OpenWA's history) is still reported,
naming the message by its WhatsApp id; ``id`` is then null.
"""
from __future__ import annotations

import time
from typing import Any

from sqlalchemy import or_, select

from app.extensions import db
from app.models import Message
from app.services import webhooks


def find(session_id: str, message_id: str | None) -> Message | None:
    """The stored message with this WhatsApp id (or our own id), if any."""
    if not message_id:
        return None
    return db.session.scalar(select(Message).where(
        Message.session_id == session_id,
        or_(Message.wa_message_id == message_id, Message.id == message_id)).limit(1))


def _names(message: Message | None, data: dict[str, Any]) -> dict[str, Any]:
    """How an event names its message: our id (null when not stored), the WhatsApp id, the chat."""
    return {"id": message.id if message is not None else None,
            "messageId": (message.wa_message_id if message is not None and message.wa_message_id
                          else data.get("messageId")),
            "chatId": message.chat_id if message is not None else data.get("chatId")}


def reaction(session_id: str, data: dict[str, Any]) -> list[str]:
    """``{messageId, chatId, from, emoji}``; ``emoji`` "" removes that sender's reaction."""
    message = find(session_id, data.get("messageId"))
    sender, emoji = str(data.get("from") or ""), str(data.get("emoji") or "")
    if message is not None:
        reactions = dict(message.reactions or {})
        if (reactions.get(sender) or "") == emoji:
            return []  # already stored: reported before
        if emoji:
            reactions[sender] = emoji
        else:
            reactions.pop(sender, None)
        message.reactions = reactions or None
    return webhooks.emit(session_id, "message.reaction", {
        **_names(message, data), "from": sender or None, "emoji": emoji,
        "reactions": (message.reactions or {}) if message is not None else None})


def revoked(session_id: str, data: dict[str, Any]) -> list[str]:
    """``{messageId, chatId, from?}``: deleted for everyone; the stored text (and the
    location, contact or poll it carried) goes too, as on the phones."""
    message = find(session_id, data.get("messageId"))
    if message is not None:
        if message.deleted == "everyone":
            return []
        message.deleted = "everyone"
        message.body = message.caption = None
        message.content = None
    return webhooks.emit(session_id, "message.revoked", {
        **_names(message, data), "from": data.get("from")})


def deleted_for_me(session_id: str, data: dict[str, Any]) -> list[str]:
    """Our own delete "for me": hidden on this device only, no event for anyone else."""
    message = find(session_id, data.get("messageId"))
    if message is not None and message.deleted is None:
        message.deleted = "me"
    return []


def edited(session_id: str, data: dict[str, Any]) -> list[str]:
    """``{messageId, chatId, body, timestamp?}``: the message's new text."""
    message = find(session_id, data.get("messageId"))
    body = data.get("body")
    at = int(data.get("timestamp") or time.time())
    previous = None
    if message is not None:
        if message.edited_at is not None and message.body == body:
            return []
        previous = message.body
        message.body, message.edited_at = body, at
    return webhooks.emit(session_id, "message.edited", {
        **_names(message, data), "body": body, "previousBody": previous, "editedAt": at})


def poll_vote(session_id: str, data: dict[str, Any]) -> list[str]:
    """``{messageId, chatId, from, selectedOptions: [option names], timestamp?}``: a voter's
    current choice (an empty list withdraws the vote), stored in the poll's ``votes``."""
    message = find(session_id, data.get("messageId"))
    voter = str(data.get("from") or "")
    selected = [str(option) for option in data.get("selectedOptions") or []]
    poll: dict[str, Any] | None = None
    if message is not None:
        content = dict(message.content or {})
        votes = dict(content.get("votes") or {})
        if voter in votes and votes[voter] == selected:
            return []
        votes[voter] = selected
        content["votes"] = votes
        message.content = poll = content
    return webhooks.emit(session_id, "poll.vote", {
        **_names(message, data), "from": voter or None, "selectedOptions": selected,
        "timestamp": int(data.get("timestamp") or time.time()),
        "poll": None if poll is None else {"name": poll.get("name"), "votes": poll.get("votes")}})


def starred(session_id: str, data: dict[str, Any]) -> list[str]:
    message = find(session_id, data.get("messageId"))
    if message is not None:
        message.starred = bool(data.get("star"))
    return []


def pinned(session_id: str, data: dict[str, Any]) -> list[str]:
    """``{messageId, pin, durationSeconds?}``: pinned until now + duration, or unpinned."""
    message = find(session_id, data.get("messageId"))
    if message is not None:
        message.pinned_until = (int(time.time()) + int(data.get("durationSeconds") or 0)
                                if data.get("pin") else None)
    return []
