"""Webhook ``filters`` (issue 13.4): an AND of conditions on an event's data; an event that
does not match is not delivered to that webhook. An event without the field a condition
names does not match it (a ``chatId`` filter lets no session-wide event through)."""
from __future__ import annotations

from typing import Any

FILTER_FIELDS = ("chatId", "from", "type", "isGroup", "fromMe", "hasMedia", "bodyContains")


def matches(filters: dict[str, Any] | None, data: dict[str, Any]) -> bool:
    if not filters:
        return True
    for name, wanted in filters.items():
        if wanted is None:
            continue
        if name == "isGroup":
            chat = data.get("chatId")
            if not isinstance(chat, str) or chat.endswith("@g.us") is not bool(wanted):
                return False
        elif name == "hasMedia":
            if bool(data.get("media")) is not bool(wanted):
                return False
        elif name == "fromMe":
            if "fromMe" not in data or bool(data["fromMe"]) is not bool(wanted):
                return False
        elif name == "bodyContains":
            text = data.get("body") or data.get("caption")
            if not isinstance(text, str) or str(wanted).casefold() not in text.casefold():
                return False
        elif name in ("chatId", "from", "type"):
            if data.get(name) != wanted:
                return False
    return True
