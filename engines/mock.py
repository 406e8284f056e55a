"""The mock engine: a simulated WhatsApp account with no browser.

It links by a QR (or pairing code) that is "scanned" after ``auto_scan_seconds`` or by
:meth:`MockEngine.simulate_scan`, acks sends sent → delivered → read, answers through an echo
contact, and delivers messages to the other mock accounts of the same deployment.

Everything time-based is decided in :meth:`MockEngine.poll` (and in calls) by reading the
injected clock: there are no threads and no sleeps.

Files, all under the session's profile directory unless said otherwise:

- ``mock-profile.json``: the link (``{"linked", "phone", "pushName"}``), written atomically.
- ``sent.jsonl``: one line per accepted send, so a send redelivered after a crash is found
  with :meth:`MockEngine.find_sent` instead of being sent twice.
- ``chats.json``: the chats that have had traffic.
- ``<profile_dir.parent>/_mocknet/<phone>/inbox/``: the mock network shared by every mock
  session of a deployment (it works across processes and machines sharing the storage). A
  sender drops one JSON file per message into the recipient's inbox; the recipient's ``poll``
  reads them in name (= time) order.
- ``<profile_dir.parent>/_mocknet/<phone>/pending/``: what "the servers" hold for this
  device and hand over at a time: the acks of its sends and the echo contact's replies, one
  file each, named by the time it is due. Like WhatsApp's servers, the network keeps them
  until the device has taken them: a file returned by one ``poll`` is deleted by the next,
  so a host killed before it stored them gets them again from the next engine that opens
  the account (a restart, or another host taking the session over).
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import itertools
import json
import logging
import os
import secrets
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from engines.base import (
    Engine,
    EngineError,
    EngineEvent,
    EngineNotFound,
    EngineNotReady,
    EngineOptions,
    EngineState,
    EngineUnsupported,
    EventKind,
    NumberStatus,
    SentMessage,
    normalise_chat_id,
    option,
)
from engines.registry import register

logger = logging.getLogger(__name__)

PROFILE_FILE = "mock-profile.json"
SENT_FILE = "sent.jsonl"
CHATS_FILE = "chats.json"
ACTIONS_FILE = "actions.jsonl"  # message actions (issue 13.1)
NETWORK_DIR_NAME = "_mocknet"
MEDIA_DIR_NAME = "_media"  # -- media (issue 12): files the mock network carries
PENDING_DIR = "pending"
#: ``options.extra`` key that moves the mock network elsewhere than beside the profiles.
NETWORK_DIR_OPTION = "mock_network_dir"
GROUPS_DIR = "_groups"  # chats, contacts, groups (issue 13.2/3): the mock network's groups
BLOCKED_FILE = "blocked.json"
MOCK_PICTURE_URL = "https://pps.whatsapp.net/mock/{}.jpg"

ECHO_PHONE = "15550000000"
ECHO_ID = f"{ECHO_PHONE}@c.us"
ECHO_NAME = "Echo"
ECHO_DELAY_SECONDS = 0.2

# No 0/O or 1/I: the code is typed in by hand on the phone.
_PAIRING_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_RUNNING = frozenset(
    {EngineState.STARTING, EngineState.QR, EngineState.AUTHENTICATING, EngineState.READY}
)


def phone_for_session(session_id: str) -> str:
    """The mock account's phone number: ``1555`` and 7 digits from ``sha256(session_id)``."""
    digest = int.from_bytes(hashlib.sha256(session_id.encode("utf-8")).digest(), "big")
    suffix = digest % 10**7
    if f"1555{suffix:07d}" == ECHO_PHONE:  # never impersonate the echo contact
        suffix = (digest >> 64) % (10**7 - 1) + 1
    return f"1555{suffix:07d}"


def write_json_atomic(path: Path, value: Any, durable: bool = True) -> None:
    """Write ``value`` as JSON to ``path`` so that readers see the old file or the new one.

    ``durable=False`` skips the fsync: the file still survives a crash of the process (the
    kernel has it), only not a crash of the machine.
    """
    temp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        with temp.open("w", encoding="utf-8") as handle:
            json.dump(value, handle, separators=(",", ":"))
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable %s: %s", path, exc)
        return None


def _b64(size: int) -> str:
    return base64.b64encode(secrets.token_bytes(size)).decode("ascii")


def _mirror_id(wa_id: str | None, peer_chat: str, my_chat: str) -> str | None:
    """How the peer sees message ``wa_id`` of our chat with it (``true``/``false`` swapped)."""
    if not wa_id:
        return None
    for ours, theirs in (("true", "false"), ("false", "true")):
        prefix = f"{ours}_{peer_chat}_"
        if wa_id.startswith(prefix):
            return f"{theirs}_{my_chat}_{wa_id[len(prefix):]}"
    return None


@dataclass
class MockOptions(EngineOptions):
    """The mock account's timing: QR rotation, the scan it makes by itself, ack spacing."""

    qr_rotate_seconds: float = option("MOCK_QR_ROTATE_SECONDS", 20.0)
    auto_scan_seconds: float = option("MOCK_AUTO_SCAN_SECONDS", 5.0)  # 0 = never
    ack_interval_seconds: float = option("MOCK_ACK_INTERVAL_SECONDS", 0.5)  # sent -> delivered -> read


@register
class MockEngine(Engine):
    """A simulated WhatsApp account; see the module docstring."""

    name: ClassVar[str] = "mock"
    options_class: ClassVar[type[EngineOptions]] = MockOptions
    options: MockOptions
    shared_dirs: ClassVar[frozenset[str]] = frozenset({NETWORK_DIR_NAME})
    test_hooks: ClassVar[frozenset[str]] = frozenset(
        {"simulate_scan", "simulate_disconnect", "simulate_incoming_media"})
    # -- scale (issue 18): send_text answers an already sent message_id's first result
    idempotent_sends: ClassVar[frozenset[str]] = frozenset({"text"})

    def __init__(
        self,
        session_id: str,
        profile_dir: Path,
        options: EngineOptions,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(session_id, profile_dir, options)
        self._clock = clock
        self._failing_starts = 0
        # Ties of due time among this engine's timed events keep the order they were made in.
        self._sequence = itertools.count()
        self._phone: str | None = None
        self._push_name = options.push_name
        # Link step.
        self._qr: str | None = None
        self._qr_keys = ""
        self._qr_shown_at = 0.0
        self._scan_due: float | None = None
        self._pairing_phone: str | None = None
        # Sent-message record, read incrementally from sent.jsonl.
        self._sent: dict[tuple[str, str], SentMessage] = {}
        self._sent_offset = 0
        self._chats: dict[str, dict[str, Any]] | None = None
        # Inbox and pending files returned by the last poll; deleted by the next one (poll()).
        self._consumed: list[Path] = []
        self._consumed_names: set[str] = set()
        # Pending files read so far (they are never rewritten) and how many of each one's
        # events were released; a file is consumed once all of them were.
        self._pending_files: dict[str, list[tuple[int, EngineEvent]]] = {}
        self._released: dict[str, int] = {}
        self._made_dirs: set[Path] = set()
        extra_dir = options.extra.get(NETWORK_DIR_OPTION)
        self.network_dir = (
            Path(extra_dir) if extra_dir else self.profile_dir.parent / NETWORK_DIR_NAME
        )

    # -- protocol: life cycle ---------------------------------------------
    @property
    def phone(self) -> str | None:
        """The linked phone number (digits), once known."""
        return self._phone

    def start(self) -> None:
        """Open the account: READY at once when the profile is linked, else show a QR."""
        if self._state in _RUNNING:
            return
        if self._failing_starts > 0:
            self._failing_starts -= 1
            raise EngineError("simulated: the connection could not be re-established")
        self._set_state(EngineState.STARTING)
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        profile = self._read_profile()
        if profile is not None:
            self._phone = str(profile["phone"])
            self._push_name = str(profile.get("pushName") or self.options.push_name)
            self._set_state(EngineState.AUTHENTICATING)
            self._emit(EventKind.AUTHENTICATED, {})
            self._become_ready()
        else:
            self._begin_qr()

    def close(self) -> None:
        """Stop; the profile, the link, the mock network registration and what the network
        holds for this device (acks, replies) are kept."""
        if self._state is EngineState.CLOSED:
            return
        self._qr = None
        self._scan_due = None
        self._set_state(EngineState.CLOSED)

    def logout(self) -> None:
        """Unlink: leave the mock network and wipe the profile directory's contents."""
        profile = self._read_profile()
        phone = self._phone or (str(profile["phone"]) if profile else None)
        if phone:
            self._unregister(phone)
        self._wipe_profile()
        self._qr = None
        self._scan_due = None
        self._pairing_phone = None
        self._phone = None
        self._push_name = self.options.push_name
        self._sent.clear()
        self._sent_offset = 0
        self._chats = None
        self._consumed.clear()
        self._consumed_names.clear()
        self._pending_files.clear()
        self._released.clear()
        self._made_dirs.clear()
        self._set_state(EngineState.LOGGED_OUT, reason="logged out")

    def poll(self) -> list[EngineEvent]:
        """Advance the simulation to the clock's time and return the events since last poll.

        Inbox and pending files returned by one poll are deleted at the start of the next, so a
        host that stores a poll's events before polling again never loses an incoming message,
        an ack or a reply; after a crash in between, the same event may be returned again.
        """
        self._forget_consumed()
        now = self._clock()
        if self._state is EngineState.QR:
            self._advance_link(now)
        if self._state is EngineState.READY:
            self._release_due(now)
            self._read_inbox()
        events, self._events = self._events, []
        return events

    def qr(self) -> str | None:
        return self._qr if self._state is EngineState.QR else None

    def request_pairing_code(self, phone_number: str) -> str:
        """An ``ABCD-EFGH`` code; the phone "enters" it after ``auto_scan_seconds``.

        The account then links as ``phone_number`` rather than the session's derived phone.
        """
        if self._state is not EngineState.QR:
            raise EngineNotReady("the account is not waiting to be linked")
        chat = normalise_chat_id(phone_number)
        if not chat.endswith("@c.us"):
            raise ValueError("a pairing code needs a phone number")
        self._pairing_phone = chat.split("@", 1)[0]
        auto = self.options.auto_scan_seconds
        self._scan_due = self._clock() + auto if auto > 0 else None
        code = "".join(secrets.choice(_PAIRING_ALPHABET) for _ in range(8))
        return f"{code[:4]}-{code[4:]}"

    # -- mock-only controls -----------------------------------------------
    def simulate_scan(self) -> None:
        """The phone scans the pending QR (or enters the pending pairing code) now."""
        if self._state is not EngineState.QR:
            raise EngineNotReady("no QR or pairing code is pending")
        self._link()

    def simulate_disconnect(self, reason: str = "connection lost", failed_reconnects: int = 0) -> None:
        """The connection drops; the account stays linked until ``start()`` reconnects it.

        The next ``failed_reconnects`` calls of ``start()`` fail, as when the network stays down.
        """
        if self._state not in _RUNNING:
            raise EngineNotReady(f"the engine is {self._state.value}")
        self._failing_starts = max(0, failed_reconnects)
        self._qr = None
        self._scan_due = None
        self._set_state(EngineState.DISCONNECTED, reason=reason)

    # -- protocol: messages -----------------------------------------------
    def send_text(
        self,
        chat_id: str,
        text: str,
        *,
        message_id: str,
        quoted_message_id: str | None = None,
        mentions: list[str] | None = None,
        link_preview: bool = False,  # message actions (issue 13.1): logged in actions.jsonl
    ) -> SentMessage:
        """Send ``text``; a ``message_id`` already sent to this chat returns the first result.

        Raises ValueError for a malformed ``chat_id`` or an empty ``message_id``.
        """
        self._require_ready()
        chat = normalise_chat_id(chat_id)
        if not message_id:
            raise ValueError("message_id must not be empty")
        earlier = self._find_sent(chat, message_id)
        if earlier is not None:
            return earlier
        if link_preview:  # message actions (issue 13.1)
            self._log_action("linkPreview", chatId=chat, id=message_id)
        now = self._clock()
        sent = SentMessage(message_id=f"true_{chat}_{message_id}", timestamp=int(now))
        # Deliver before recording: a crash in between means a resend on redelivery, which the
        # recipient sees under the same message id, rather than a message silently lost.
        self._deliver(chat, text, message_id, quoted_message_id, sent.timestamp)
        self._record_sent(chat, message_id, sent)
        later = self._acks(sent, chat, now)
        if chat == ECHO_ID:
            later.append((now + ECHO_DELAY_SECONDS, self._echo_event(text, now)))
        self._schedule_all(later)
        self._note_chat(chat, sent.timestamp, incoming=False)
        return sent

    # -- media (issue 12) ---------------------------------------------------
    def send_media(
        self,
        chat_id: str,
        kind: str,
        path: Path,
        *,
        mimetype: str,
        filename: str | None,
        caption: str | None,
        ptt: bool,
        message_id: str,
        quoted_message_id: str | None = None,
    ) -> SentMessage:
        """Send a file of every media type: the mock network carries a copy of it (under
        ``_mocknet/_media/<sha256>``) to a mock recipient, and the echo contact sends it back."""
        self._require_ready()
        chat = normalise_chat_id(chat_id)
        if kind not in self.MEDIA_KINDS:
            raise EngineUnsupported(f"the mock engine cannot send {kind} messages")
        if not message_id:
            raise ValueError("message_id must not be empty")
        earlier = self._find_sent(chat, message_id)
        if earlier is not None:
            return earlier
        now = self._clock()
        sent = SentMessage(message_id=f"true_{chat}_{message_id}", timestamp=int(now))
        carried: dict[str, Any] = {"mimetype": mimetype, "filename": filename,
                                   "path": str(self._carry(Path(path)))}
        if ptt:
            carried["ptt"] = True
        extra = {"type": kind, "body": None, "caption": caption, "media": carried}
        self._deliver_media(chat, message_id, quoted_message_id, sent.timestamp, extra)
        self._record_sent(chat, message_id, sent)
        later = self._acks(sent, chat, now)
        if chat == ECHO_ID:
            echo = self._echo_event(caption or "", now)
            later.append((now + ECHO_DELAY_SECONDS,
                          EngineEvent(EventKind.MESSAGE, {**echo.data, **extra})))
        self._schedule_all(later)
        self._note_chat(chat, sent.timestamp, incoming=False)
        return sent

    def simulate_incoming_media(self, sender: str, kind: str, path: str, mimetype: str,
                                filename: str | None = None, caption: str | None = None) -> str:
        """A contact sends this host the file at ``path`` (test hook); returns its WhatsApp id."""
        self._require_ready()
        chat = normalise_chat_id(sender)
        key = "3EB0" + secrets.token_hex(8).upper()
        data = self._incoming(chat, key, "", int(self._clock()), None)
        data.update(type=kind, body=None, caption=caption, media={
            "mimetype": mimetype, "filename": filename, "path": str(self._carry(Path(path)))})
        self._emit(EventKind.MESSAGE, data)
        self._note_chat(chat, data["timestamp"], incoming=True)
        return str(data["id"])

    def _carry(self, path: Path) -> Path:
        """The network's copy of a file, content-addressed (sent twice, stored once)."""
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1024 * 1024):
                digest.update(chunk)
        folder = self.network_dir / MEDIA_DIR_NAME
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / digest.hexdigest()
        if not target.is_file():
            temp = folder / f".{target.name}.{uuid.uuid4().hex}.tmp"
            shutil.copyfile(path, temp)
            os.replace(temp, target)
        return target

    def _deliver_media(self, chat: str, key: str, quoted_message_id: str | None, timestamp: int,
                       extra: dict[str, Any]) -> None:
        if not chat.endswith("@c.us") or chat == ECHO_ID:
            return
        recipient = chat.split("@", 1)[0]
        if recipient == self._phone or not self._is_registered(recipient):
            return
        payload = {"id": key, "from": self._phone, "to": recipient, "body": "",
                   "timestamp": timestamp, "pushName": self._push_name,
                   "quotedMessageId": _mirror_id(quoted_message_id, chat, f"{self._phone}@c.us"),
                   **extra}
        inbox = self._account_dir(recipient) / "inbox"
        try:
            write_json_atomic(inbox / f"{time.time_ns():020d}-{uuid.uuid4().hex}.json", payload)
        except FileNotFoundError:
            logger.info("mock account %s left the network; message %s went nowhere", recipient, key)

    @staticmethod
    def _media_fields(payload: dict[str, Any]) -> dict[str, Any]:
        """What an inbox file carries beyond a text (a media message's type, caption, file)."""
        if not payload.get("media"):
            return {}
        return {"type": payload.get("type") or "document", "body": None,
                "caption": payload.get("caption"), "media": payload["media"]}

    def find_sent(self, chat_id: str, message_id: str) -> SentMessage | None:
        """The earlier result for our ``message_id`` in this chat, also after a restart.

        Works in every state: it reads the profile directory only.
        """
        try:
            chat = normalise_chat_id(chat_id)
        except ValueError:
            return None
        return self._find_sent(chat, message_id)

    # -- message actions (issue 13.1) ---------------------------------------
    # Every action is logged in ``actions.jsonl`` of the profile (what the engine was asked,
    # with its arguments); what reaches another mock account of the network (a message, a
    # reaction, an edit, a revoke) is handed to it through its ``pending/`` folder, as the
    # servers would, where its poll() finds it as an engine event.
    test_hooks = test_hooks | frozenset({"simulate_event"})
    #: How long after sending a message WhatsApp lets it be edited.
    EDIT_WINDOW_SECONDS: ClassVar[int] = 15 * 60
    PIN_DURATIONS: ClassVar[frozenset[int]] = frozenset({86400, 604800, 2592000})

    def send_location(self, chat_id: str, latitude: float, longitude: float, *, message_id: str,
                      description: str | None = None, address: str | None = None) -> SentMessage:
        content = {"latitude": latitude, "longitude": longitude, "description": description,
                   "address": address}
        return self._send_kind(chat_id, message_id, "location", description, content)

    def send_contact(self, chat_id: str, contact_name: str, contact_number: str, vcard: str, *,
                     message_id: str) -> SentMessage:
        if "BEGIN:VCARD" not in vcard:
            raise EngineError("not a vCard")
        content = {"contactName": contact_name, "contactNumber": contact_number, "vcard": vcard}
        return self._send_kind(chat_id, message_id, "contact", contact_name, content)

    def send_poll(self, chat_id: str, name: str, options: list[str], multiple_answers: bool, *,
                  message_id: str) -> SentMessage:
        content = {"name": name, "options": list(options), "multipleAnswers": multiple_answers,
                   "votes": {}}
        return self._send_kind(chat_id, message_id, "poll", name, content)

    def forward_message(self, to_chat_id: str, from_chat_id: str, wa_message_id: str, *,
                        message_id: str) -> SentMessage:
        self._message_key(wa_message_id)
        content = {"fromChatId": normalise_chat_id(from_chat_id), "messageId": wa_message_id}
        return self._send_kind(to_chat_id, message_id, "forward", None, content)

    def react(self, chat_id: str, wa_message_id: str, emoji: str) -> None:
        chat = self._acted_on(chat_id, wa_message_id)
        self._log_action("react", chatId=chat, messageId=wa_message_id, emoji=emoji)
        self._tell_peer(chat, wa_message_id, EventKind.REACTION, {"emoji": emoji})

    def delete_message(self, chat_id: str, wa_message_id: str, for_everyone: bool) -> None:
        chat = self._acted_on(chat_id, wa_message_id)
        if for_everyone and not wa_message_id.startswith("true_"):
            raise EngineError("only your own messages can be deleted for everyone")
        self._log_action("delete", chatId=chat, messageId=wa_message_id, forEveryone=for_everyone)
        if for_everyone:
            self._tell_peer(chat, wa_message_id, EventKind.REVOKED, {})

    def edit_message(self, chat_id: str, wa_message_id: str, text: str) -> None:
        chat = self._acted_on(chat_id, wa_message_id)
        if not wa_message_id.startswith("true_"):
            raise EngineError("only your own messages can be edited")
        sent = self._find_sent(chat, wa_message_id.rsplit("_", 1)[1])
        if sent is not None and self._clock() - sent.timestamp > self.EDIT_WINDOW_SECONDS:
            raise EngineError("the message is too old to be edited")
        self._log_action("edit", chatId=chat, messageId=wa_message_id, text=text)
        self._tell_peer(chat, wa_message_id, EventKind.EDITED,
                        {"body": text, "timestamp": int(self._clock())})

    def star_message(self, chat_id: str, wa_message_id: str, star: bool) -> None:
        chat = self._acted_on(chat_id, wa_message_id)
        self._log_action("star", chatId=chat, messageId=wa_message_id, star=star)

    def pin_message(self, chat_id: str, wa_message_id: str, pin: bool,
                    duration_seconds: int | None = None) -> None:
        chat = self._acted_on(chat_id, wa_message_id)
        if pin and duration_seconds not in self.PIN_DURATIONS:
            raise EngineError("a pin lasts 86400, 604800 or 2592000 seconds")
        self._log_action("pin", chatId=chat, messageId=wa_message_id, pin=pin,
                         durationSeconds=duration_seconds)

    def simulate_event(self, kind: str, data: dict[str, Any]) -> None:
        """The phone or a peer did something: report ``kind`` (revoked, reaction, edited,
        poll_vote) with ``data`` at the next poll, as WhatsApp would."""
        self._require_ready()
        allowed = {EventKind.REVOKED, EventKind.REACTION, EventKind.EDITED, EventKind.POLL_VOTE}
        event_kind = EventKind(kind)
        if event_kind not in allowed:
            raise EngineError(f"cannot simulate a {kind} event")
        self._emit(event_kind, dict(data))

    def actions(self) -> list[dict[str, Any]]:
        """What the engine was asked to do, oldest first (tests read it)."""
        try:
            lines = (self.profile_dir / ACTIONS_FILE).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def _log_action(self, action: str, **fields: Any) -> None:
        line = json.dumps({"action": action, **fields}, separators=(",", ":"))
        with (self.profile_dir / ACTIONS_FILE).open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    @staticmethod
    def _message_key(wa_message_id: str) -> tuple[bool, str, str]:
        """(fromMe, chat, key) of a serialized WhatsApp message id."""
        parts = wa_message_id.split("_", 2)
        if len(parts) != 3 or parts[0] not in ("true", "false") or "@" not in parts[1]:
            raise EngineError(f"no message {wa_message_id!r} (not a WhatsApp message id)")
        return parts[0] == "true", parts[1], parts[2]

    def _acted_on(self, chat_id: str, wa_message_id: str) -> str:
        self._require_ready()
        chat = normalise_chat_id(chat_id)
        _, in_chat, _ = self._message_key(wa_message_id)
        if in_chat != chat:
            raise EngineError(f"message {wa_message_id} is not in chat {chat}")
        return chat

    def _peer(self, chat: str) -> str | None:
        """The mock account behind a one-to-one chat, if it is on the network."""
        if not chat.endswith("@c.us") or chat == ECHO_ID:
            return None
        phone = chat.split("@", 1)[0]
        return phone if phone != self._phone and self._is_registered(phone) else None

    def _hand_to(self, phone: str, event: EngineEvent) -> None:
        """Put ``event`` in another account's pending folder, due now."""
        pending = self._account_dir(phone) / PENDING_DIR
        pending.mkdir(parents=True, exist_ok=True)
        due = round(self._clock() * 1e9)
        name = f"{due:020d}-{next(self._sequence):08d}-{uuid.uuid4().hex[:12]}.json"
        write_json_atomic(pending / name, {"kind": event.kind.value, "data": event.data},
                          durable=False)

    def _tell_peer(self, chat: str, wa_message_id: str, kind: EventKind,
                   data: dict[str, Any]) -> None:
        peer = self._peer(chat)
        me = f"{self._phone}@c.us"
        theirs = _mirror_id(wa_message_id, chat, me)
        if peer is None or theirs is None:
            return
        self._hand_to(peer, EngineEvent(kind, {"messageId": theirs, "chatId": me, "from": me,
                                               **data}))

    def _send_kind(self, chat_id: str, message_id: str, kind: str, body: str | None,
                   content: dict[str, Any]) -> SentMessage:
        """A send of a kind other than text: recorded, acked and delivered as send_text does."""
        self._require_ready()
        chat = normalise_chat_id(chat_id)
        if not message_id:
            raise ValueError("message_id must not be empty")
        earlier = self._find_sent(chat, message_id)
        if earlier is not None:
            return earlier
        now = self._clock()
        sent = SentMessage(message_id=f"true_{chat}_{message_id}", timestamp=int(now))
        self._log_action(kind, chatId=chat, id=message_id, **content)
        peer = self._peer(chat)
        if peer is not None:
            me = f"{self._phone}@c.us"
            self._hand_to(peer, EngineEvent(EventKind.MESSAGE, {
                "id": f"false_{me}_{message_id}", "chatId": me, "from": me,
                "to": f"{peer}@c.us", "fromMe": False, "type": kind, "body": body,
                "timestamp": sent.timestamp, "quotedMessageId": None, "content": content}))
        self._record_sent(chat, message_id, sent)
        self._schedule_all(self._acks(sent, chat, now))
        self._note_chat(chat, sent.timestamp, incoming=False)
        return sent

    # -- protocol: queries ------------------------------------------------
    def check_number(self, number: str) -> NumberStatus:
        """Exists: the echo contact, registered mock phones, and numbers not ending in 0000."""
        self._require_ready()
        try:
            chat = normalise_chat_id(number)
        except ValueError:
            return NumberStatus(exists=False, whatsapp_id=None)
        if not chat.endswith("@c.us"):
            return NumberStatus(exists=False, whatsapp_id=None)
        digits = chat.split("@", 1)[0]
        exists = chat == ECHO_ID or self._is_registered(digits) or not digits.endswith("0000")
        return NumberStatus(exists=exists, whatsapp_id=chat if exists else None)

    def contacts(self) -> list[dict[str, Any]]:
        """The echo contact and every other mock account on the mock network."""
        self._require_ready()
        found = [self._contact(ECHO_ID, ECHO_NAME)]
        for phone, push_name in self._network_accounts():
            if phone != self._phone and phone != ECHO_PHONE:
                found.append(self._contact(f"{phone}@c.us", push_name))
        return found

    def chats(self) -> list[dict[str, Any]]:
        """Chats that have had traffic, most recent first."""
        self._require_ready()
        chats = sorted(self._load_chats().values(), key=lambda c: c["timestamp"], reverse=True)
        return [self._chat_view(chat) for chat in chats]

    def groups(self) -> list[dict[str, Any]]:
        """The groups this account is a member of (the mock network's groups)."""
        self._require_ready()
        return [self._group_view(group) for group in self._all_groups()
                if self._me() in group["participants"]]

    # -- internals: events and state --------------------------------------

    def _pending_dir(self) -> Path:
        assert self._phone is not None
        return self._account_dir(self._phone) / PENDING_DIR

    def _acks(self, sent: SentMessage, chat: str, now: float) -> list[tuple[float, EngineEvent]]:
        """The three acks the network sends back for a send: sent now, then delivered, read."""
        interval = self.options.ack_interval_seconds
        return [(now + delay, EngineEvent(EventKind.ACK, {"messageId": sent.message_id,
                                                          "chatId": chat, "ack": ack}))
                for delay, ack in ((0.0, "sent"), (interval, "delivered"), (2 * interval, "read"))]

    def _schedule(self, due: float, event: EngineEvent) -> None:
        """Have the network hand ``event`` to this device at ``due`` (on the engine's clock)."""
        self._schedule_all([(due, event)])

    def _schedule_all(self, timed: list[tuple[float, EngineEvent]]) -> None:
        """Have the network hand each event to this device at its due time, all in one file
        (scale, issue 18: a send's three acks were three files written, read and deleted),
        named by the earliest due time. The file is deleted by the poll after the one that
        released its last event; after a crash it is read again whole (an ack returned twice
        is harmless: acks only move a message forward).

        Written without an fsync: it must outlive the host process (kill -9), as the sent
        log does, not the machine."""
        pending = self._pending_dir()
        if pending not in self._made_dirs:
            pending.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(pending)
        timed = sorted(timed, key=lambda item: item[0])  # stable: ties keep their order
        name = (f"{round(timed[0][0] * 1e9):020d}-{next(self._sequence):08d}-"
                f"{uuid.uuid4().hex[:12]}.json")
        if len(timed) == 1:
            record: dict[str, Any] = {"kind": timed[0][1].kind.value, "data": timed[0][1].data}
        else:
            record = {"events": [{"due": round(due * 1e9), "kind": event.kind.value,
                                  "data": event.data} for due, event in timed]}
        try:
            write_json_atomic(pending / name, record, durable=False)
        except FileNotFoundError:  # the account's folder was removed and made again since
            pending.mkdir(parents=True, exist_ok=True)
            write_json_atomic(pending / name, record, durable=False)

    def _release_due(self, now: float) -> None:
        """Emit the pending events due by ``now``, in due order; delete them next poll."""
        pending = self._pending_dir()
        try:
            names = sorted(n for n in os.listdir(pending)
                           if n.endswith(".json") and not n.startswith("."))
        except FileNotFoundError:
            return
        horizon = round(now * 1e9)
        due_now: list[tuple[int, str, int, EngineEvent]] = []
        for name in names:
            try:
                first_due = int(name.split("-", 1)[0])
            except ValueError:
                first_due = 0
            if first_due > horizon:
                break
            if name in self._consumed_names:
                continue
            path = pending / name
            timed = self._pending_files.get(name)
            if timed is None:
                timed = self._read_pending(path, first_due)
                if timed is None:
                    continue
                self._pending_files[name] = timed  # a pending file is never rewritten
            done = self._released.get(name, 0)
            for index in range(done, len(timed)):
                if timed[index][0] > horizon:
                    break
                due_now.append((timed[index][0], name, index, timed[index][1]))
                done = index + 1
            self._released[name] = done
            if done == len(timed):
                self._consumed.append(path)
                self._consumed_names.add(name)
        for _, _, _, event in sorted(due_now, key=lambda item: item[:3]):
            if event.kind is EventKind.MESSAGE:
                self._note_chat(event.data["chatId"], event.data["timestamp"], incoming=True)
            self._events.append(event)

    @staticmethod
    def _read_pending(path: Path, first_due: int) -> list[tuple[int, EngineEvent]] | None:
        """The timed events of a pending file (one event, or a send's ``events``), or None
        when it is gone or unreadable (then set aside as ``.bad``)."""
        record = _read_json(path)
        try:
            if isinstance(record, dict) and "events" in record:
                return [(int(item["due"]), EngineEvent(EventKind(item["kind"]), dict(item["data"])))
                        for item in record["events"]]
            return [(first_due, EngineEvent(EventKind(record["kind"]), dict(record["data"])))]
        except (TypeError, KeyError, ValueError):
            if path.exists():
                logger.warning("setting aside unreadable pending event %s", path)
                with contextlib.suppress(OSError):
                    os.replace(path, path.with_suffix(".bad"))
            return None

    def _echo_event(self, text: str, now: float) -> EngineEvent:
        key = "3EB0" + secrets.token_hex(8).upper()
        return EngineEvent(
            EventKind.MESSAGE,
            self._incoming(ECHO_ID, key, text, int(now + ECHO_DELAY_SECONDS), None),
        )

    def _incoming(
        self, sender: str, key: str, body: str, timestamp: int, quoted: str | None
    ) -> dict[str, Any]:
        return {
            "id": f"false_{sender}_{key}",
            "chatId": sender,
            "from": sender,
            "to": f"{self._phone}@c.us",
            "fromMe": False,
            "type": "text",
            "body": body,
            "timestamp": timestamp,
            "quotedMessageId": quoted,
        }

    # -- internals: linking -----------------------------------------------
    def _read_profile(self) -> dict[str, Any] | None:
        profile = _read_json(self.profile_dir / PROFILE_FILE)
        if isinstance(profile, dict) and profile.get("linked") and profile.get("phone"):
            return profile
        return None

    def _begin_qr(self) -> None:
        now = self._clock()
        # Like WhatsApp Web: the keys hold for the whole link attempt, only the ref rotates.
        self._qr_keys = ",".join((_b64(32), _b64(32), _b64(32)))
        self._pairing_phone = None
        auto = self.options.auto_scan_seconds
        self._scan_due = now + auto if auto > 0 else None
        self._set_state(EngineState.QR)
        self._show_qr(now)

    def _show_qr(self, now: float) -> None:
        self._qr = f"2@{_b64(54)},{self._qr_keys}"
        self._qr_shown_at = now
        self._emit(EventKind.QR, {"qr": self._qr})

    def _advance_link(self, now: float) -> None:
        if self._scan_due is not None and now >= self._scan_due:
            self._link()
            return
        rotate = self.options.qr_rotate_seconds
        if rotate > 0 and now >= self._qr_shown_at + rotate:
            self._show_qr(now)

    def _link(self) -> None:
        self._phone = self._pairing_phone or phone_for_session(self.session_id)
        self._push_name = self.options.push_name
        self._qr = None
        self._scan_due = None
        self._pairing_phone = None
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            self.profile_dir / PROFILE_FILE,
            {
                "linked": True,
                "phone": self._phone,
                "pushName": self._push_name,
                "sessionId": self.session_id,
                "linkedAt": int(self._clock()),
            },
        )
        self._set_state(EngineState.AUTHENTICATING)
        self._emit(EventKind.AUTHENTICATED, {})
        self._become_ready()

    def _become_ready(self) -> None:
        assert self._phone is not None
        self._register(self._phone)
        self._set_state(EngineState.READY)
        self._emit(EventKind.READY, {"phone": self._phone, "pushName": self._push_name})

    def _wipe_profile(self) -> None:
        if not self.profile_dir.is_dir():
            return
        for child in self.profile_dir.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)

    # -- internals: sent record -------------------------------------------
    def _find_sent(self, chat: str, message_id: str) -> SentMessage | None:
        found = self._sent.get((chat, message_id))
        if found is None:
            self._refresh_sent()
            found = self._sent.get((chat, message_id))
        return found

    def _refresh_sent(self) -> None:
        try:
            if os.stat(self.profile_dir / SENT_FILE).st_size <= self._sent_offset:
                return  # nothing appended since (a stat, not an open and a read, per send)
            with (self.profile_dir / SENT_FILE).open("rb") as handle:
                handle.seek(self._sent_offset)
                chunk = handle.read()
        except FileNotFoundError:
            return
        end = chunk.rfind(b"\n")
        if end < 0:
            return
        for line in chunk[:end].split(b"\n"):
            try:
                record = json.loads(line)
                key = (str(record["chatId"]), str(record["id"]))
                sent = SentMessage(str(record["messageId"]), int(record["timestamp"]))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash
            self._sent.setdefault(key, sent)
        self._sent_offset += end + 1

    def _record_sent(self, chat: str, message_id: str, sent: SentMessage) -> None:
        record = {
            "chatId": chat,
            "id": message_id,
            "messageId": sent.message_id,
            "timestamp": sent.timestamp,
        }
        line = json.dumps(record, separators=(",", ":")).encode("utf-8") + b"\n"
        with (self.profile_dir / SENT_FILE).open("a+b") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    line = b"\n" + line  # end the line a crash cut short
            # No fsync: a phone's send log outlives a crash of the host process (kill -9,
            # which the failover tests do), which is what find_sent is for; an fsync per
            # send made the mock engine, not the gateway, the cost of a send in make bench.
            handle.write(line)
            handle.flush()
        self._sent[(chat, message_id)] = sent

    # -- internals: chats -------------------------------------------------
    def _load_chats(self) -> dict[str, dict[str, Any]]:
        if self._chats is None:
            stored = _read_json(self.profile_dir / CHATS_FILE)
            self._chats = stored if isinstance(stored, dict) else {}
        return self._chats

    def _note_chat(self, chat: str, timestamp: int, *, incoming: bool) -> None:
        chats = self._load_chats()
        entry = chats.get(chat)
        if entry is None:
            entry = {"id": chat, "name": self._name_of(chat), "unreadCount": 0, "timestamp": 0}
            chats[chat] = entry
        before = (entry["timestamp"], entry["unreadCount"])
        entry["timestamp"] = max(int(entry["timestamp"]), timestamp)
        # Sending into a chat means it has been read, as on the phone.
        entry["unreadCount"] = int(entry["unreadCount"]) + 1 if incoming else 0
        if (entry["timestamp"], entry["unreadCount"]) == before:
            return  # scale (issue 18): most sends of a second change nothing in the file
        write_json_atomic(self.profile_dir / CHATS_FILE, chats, durable=False)

    def _name_of(self, chat: str) -> str:
        if chat == ECHO_ID:
            return ECHO_NAME
        digits = chat.split("@", 1)[0]
        account = _read_json(self.network_dir / digits / "account.json")
        if isinstance(account, dict) and account.get("pushName"):
            return str(account["pushName"])
        return digits

    @staticmethod
    def _contact(wa_id: str, name: str) -> dict[str, Any]:
        return {"id": wa_id, "name": name, "pushName": name, "isBusiness": False}

    # -- internals: mock network ------------------------------------------
    def _account_dir(self, phone: str) -> Path:
        return self.network_dir / phone

    def _is_registered(self, phone: str) -> bool:
        return (self._account_dir(phone) / "inbox").is_dir()

    def _register(self, phone: str) -> None:
        account = self._account_dir(phone)
        (account / "inbox").mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            account / "account.json",
            {"phone": phone, "pushName": self._push_name, "sessionId": self.session_id},
        )

    def _unregister(self, phone: str) -> None:
        account = self._account_dir(phone)
        owner = _read_json(account / "account.json")
        if isinstance(owner, dict) and owner.get("sessionId") not in (None, self.session_id):
            return  # the number was linked again by another session since
        shutil.rmtree(account, ignore_errors=True)

    def _network_accounts(self) -> list[tuple[str, str]]:
        try:
            entries = sorted(os.listdir(self.network_dir))
        except FileNotFoundError:
            return []
        accounts = []
        for phone in entries:
            if not phone.isdigit() or not self._is_registered(phone):
                continue
            info = _read_json(self._account_dir(phone) / "account.json")
            push_name = str(info.get("pushName") or phone) if isinstance(info, dict) else phone
            accounts.append((phone, push_name))
        return accounts

    def _deliver(
        self, chat: str, text: str, key: str, quoted_message_id: str | None, timestamp: int
    ) -> None:
        """Drop the message into the recipient's inbox if it is a mock account; else nowhere."""
        if chat.endswith("@g.us"):
            self._deliver_to_group(chat, text, key, quoted_message_id, timestamp)
            return
        if not chat.endswith("@c.us") or chat == ECHO_ID:
            return
        recipient = chat.split("@", 1)[0]
        if recipient == self._phone or not self._is_registered(recipient):
            return
        inbox = self._account_dir(recipient) / "inbox"
        payload = {
            "id": key,
            "from": self._phone,
            "to": recipient,
            "type": "text",
            "body": text,
            "timestamp": timestamp,
            "quotedMessageId": _mirror_id(quoted_message_id, chat, f"{self._phone}@c.us"),
            "pushName": self._push_name,
        }
        try:
            write_json_atomic(inbox / f"{time.time_ns():020d}-{uuid.uuid4().hex}.json", payload)
        except FileNotFoundError:
            # The recipient logged out between the check and the write.
            logger.info("mock account %s left the network; message %s went nowhere", recipient, key)

    def _read_inbox(self) -> None:
        assert self._phone is not None
        inbox = self._account_dir(self._phone) / "inbox"
        try:
            names = sorted(
                name
                for name in os.listdir(inbox)
                if name.endswith(".json") and not name.startswith(".")
            )
        except FileNotFoundError:
            return
        for name in names:
            if name in self._consumed_names:
                continue
            path = inbox / name
            try:
                payload = json.loads(path.read_text(encoding="utf-8"))
                sender = f"{payload['from']}@c.us"
                data = self._incoming(
                    sender,
                    str(payload["id"]),
                    str(payload["body"]),
                    int(payload["timestamp"]),
                    payload.get("quotedMessageId"),
                )
                data.update(self._media_fields(payload))  # -- media (issue 12)
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning("setting aside unreadable mock message %s: %s", path, exc)
                with contextlib.suppress(OSError):
                    os.replace(path, path.with_suffix(".bad"))
                continue
            self._note_chat(sender, data["timestamp"], incoming=True)
            self._emit(EventKind.MESSAGE, data)
            self._consumed.append(path)
            self._consumed_names.add(name)

    def _forget_consumed(self) -> None:
        for path in self._consumed:
            path.unlink(missing_ok=True)
            self._pending_files.pop(path.name, None)
            self._released.pop(path.name, None)
        self._consumed.clear()
        self._consumed_names.clear()

    # -- chats, contacts, groups (issue 13.2/3) ---------------------------------
    # Groups live on the mock network (``_mocknet/_groups/<id>.json``, changed under a file
    # lock), so every mock account of a deployment sees the same group; what a change means
    # to the members (joined, left, promoted, renamed...) reaches each member's device as an
    # event in its ``pending`` folder, as the servers hand it over. Group messages go the
    # same way, one MESSAGE event per member.

    def contact(self, contact_id: str) -> dict[str, Any]:
        self._require_ready()
        status = self.check_number(contact_id)
        if not status.exists or status.whatsapp_id is None:
            raise EngineNotFound(f"{contact_id} is not on WhatsApp")
        chat = status.whatsapp_id
        digits = chat.split("@", 1)[0]
        known = chat == ECHO_ID or self._is_registered(digits)
        name = self._name_of(chat) if known else None
        return {"id": chat, "number": digits, "name": name, "pushName": name,
                "isBusiness": False, "isBlocked": chat in self._blocked(),
                "about": "Hey there! I am using WhatsApp." if known else None}

    def contact_picture(self, contact_id: str) -> str | None:
        self._require_ready()
        contact = self.contact(contact_id)
        # Only the echo contact has a picture; a string, never fetched by anyone.
        return MOCK_PICTURE_URL.format(contact["number"]) if contact["id"] == ECHO_ID else None

    def block_contact(self, contact_id: str, block: bool) -> None:
        self._require_ready()
        chat = self.contact(contact_id)["id"]
        blocked = set(self._blocked())
        (blocked.add if block else blocked.discard)(chat)
        write_json_atomic(self.profile_dir / BLOCKED_FILE, sorted(blocked), durable=False)

    def mark_chat_read(self, chat_id: str, read: bool) -> None:
        # Read receipts: the mock sender acks its own sends up to "read" (send_text), so
        # reading here has nothing more to tell it; WhatsApp Web sends them on markIsRead.
        self._update_chat(chat_id, unreadCount=0 if read else None)

    def archive_chat(self, chat_id: str, archive: bool) -> None:
        self._update_chat(chat_id, archived=archive)

    def pin_chat(self, chat_id: str, pin: bool) -> None:
        self._update_chat(chat_id, pinned=pin)

    def mute_chat(self, chat_id: str, duration: int | None) -> None:
        until = -1 if duration is None else (0 if duration == 0 else int(self._clock()) + duration)
        self._update_chat(chat_id, muteExpiration=until)

    def delete_chat(self, chat_id: str) -> None:
        self._require_ready()
        chats = self._load_chats()
        if chats.pop(normalise_chat_id(chat_id), None) is None:
            raise EngineNotFound(f"no chat {chat_id}")
        write_json_atomic(self.profile_dir / CHATS_FILE, chats, durable=False)

    def set_presence(self, presence: str) -> None:
        self._require_ready()
        if presence not in ("available", "unavailable"):
            raise ValueError("presence must be available or unavailable")
        me = self._me()
        peers = [c for c in self._load_chats() if c.endswith("@c.us")]
        self._notify(peers, EventKind.PRESENCE, {"chatId": me, "from": me, "state": presence})

    def set_chat_state(self, chat_id: str, state: str) -> None:
        self._require_ready()
        if state not in ("typing", "recording", "paused"):
            raise ValueError("state must be typing, recording or paused")
        chat, me = normalise_chat_id(chat_id), self._me()
        if chat.endswith("@g.us"):
            group = self._member_group(chat)
            self._notify([p for p in group["participants"] if p != me], EventKind.PRESENCE,
                         {"chatId": chat, "from": me, "state": state})
        else:
            self._notify([chat], EventKind.PRESENCE, {"chatId": me, "from": me, "state": state})

    def group_info(self, group_id: str) -> dict[str, Any]:
        self._require_ready()
        return self._group_view(self._member_group(group_id))

    def create_group(self, subject: str, participants: list[str]) -> dict[str, Any]:
        self._require_ready()
        me = self._me()
        gid = f"120363{secrets.randbelow(10**12):012d}@g.us"
        with self._groups_lock():
            group: dict[str, Any] = {
                "id": gid, "subject": subject, "description": None, "owner": me,
                "participants": {me: {"isAdmin": True, "isSuperAdmin": True}},
                "settings": {"announce": False, "restrict": False},
                "inviteCode": self._new_invite_code(), "creation": int(self._clock())}
            results = self._add(group, participants)
            self._save_group(group)
        added = [r["id"] for r in results if r["success"]]
        self._notify(list(group["participants"]), EventKind.GROUP_JOIN,
                     {"groupId": gid, "participants": [me, *added], "by": me,
                      "action": "create", "subject": subject})
        self._note_chat(gid, int(self._clock()), incoming=False)
        return {**self._group_view(group), "results": results}

    def change_participants(self, group_id: str, action: str,
                            participants: list[str]) -> list[dict[str, Any]]:
        self._require_ready()
        if action not in ("add", "remove", "promote", "demote"):
            raise ValueError("action must be add, remove, promote or demote")
        me = self._me()
        with self._groups_lock():
            group = self._member_group(group_id)
            before = list(group["participants"])
            if not group["participants"][me]["isAdmin"]:
                return [{"id": normalise_chat_id(p), "code": 403, "success": False,
                         "message": "only group admins can do this"} for p in participants]
            if action == "add":
                results = self._add(group, participants)
            else:
                results = [self._change_one(group, action, p) for p in participants]
            self._save_group(group)
        changed = [r["id"] for r in results if r["success"]]
        if changed:
            kind = {"add": EventKind.GROUP_JOIN, "remove": EventKind.GROUP_LEAVE}.get(
                action, EventKind.GROUP_UPDATE)
            audience = sorted(set(before) | set(group["participants"]))
            self._notify(audience, kind, {"groupId": group["id"], "participants": changed,
                                          "by": me, "action": action})
        return results

    def set_group_subject(self, group_id: str, subject: str) -> None:
        self._change_group(group_id, "subject", subject=subject)

    def set_group_description(self, group_id: str, description: str) -> None:
        self._change_group(group_id, "description", description=description)

    def set_group_settings(self, group_id: str, announce: bool | None,
                           restrict: bool | None) -> None:
        changes = {k: v for k, v in (("announce", announce), ("restrict", restrict))
                   if v is not None}
        self._change_group(group_id, "settings", **changes)

    def group_invite_code(self, group_id: str, revoke: bool) -> str:
        self._require_ready()
        with self._groups_lock():
            group = self._member_group(group_id)
            if revoke:
                self._require_admin(group)
                group["inviteCode"] = self._new_invite_code()
                self._save_group(group)
        return str(group["inviteCode"])

    def join_group(self, invite_code: str) -> str:
        self._require_ready()
        me = self._me()
        with self._groups_lock():
            found = [g for g in self._all_groups() if g.get("inviteCode") == invite_code]
            if not found:
                raise EngineNotFound("this invite code is not valid (revoked or never issued)")
            group = found[0]
            joined = me not in group["participants"]
            if joined:
                group["participants"][me] = {"isAdmin": False, "isSuperAdmin": False}
                self._save_group(group)
        if joined:
            self._notify(list(group["participants"]), EventKind.GROUP_JOIN,
                         {"groupId": group["id"], "participants": [me], "by": me,
                          "action": "join"})
        self._note_chat(group["id"], int(self._clock()), incoming=False)
        return str(group["id"])

    def leave_group(self, group_id: str) -> None:
        self._require_ready()
        me = self._me()
        with self._groups_lock():
            group = self._member_group(group_id)
            audience = list(group["participants"])
            del group["participants"][me]
            self._save_group(group)
        self._notify(audience, EventKind.GROUP_LEAVE,
                     {"groupId": group["id"], "participants": [me], "by": me, "action": "leave"})

    def simulate_incoming_call(self, caller: str, is_video: bool = False) -> None:
        """Someone calls this account (mock only; WhatsApp Web only reports calls)."""
        self._require_ready()
        self._emit(EventKind.CALL, {"callId": secrets.token_hex(8).upper(),
                                    "from": normalise_chat_id(caller), "isVideo": is_video,
                                    "isGroup": False, "timestamp": int(self._clock())})

    # internals of this block ----------------------------------------------------
    def _me(self) -> str:
        assert self._phone is not None
        return f"{self._phone}@c.us"

    def _blocked(self) -> list[str]:
        found = _read_json(self.profile_dir / BLOCKED_FILE)
        return [str(v) for v in found] if isinstance(found, list) else []

    def _chat_view(self, chat: dict[str, Any]) -> dict[str, Any]:
        until = chat.get("muteExpiration", 0)
        view = {k: v for k, v in chat.items() if k != "muteExpiration"}
        view.update(isGroup=str(chat["id"]).endswith("@g.us"),
                    archived=bool(chat.get("archived")), pinned=bool(chat.get("pinned")),
                    muted=until == -1 or until > self._clock())
        if view["isGroup"]:
            group = self._read_group(str(chat["id"]))
            if group is not None:
                view["name"] = group["subject"]
        return view

    def _update_chat(self, chat_id: str, **values: Any) -> None:
        self._require_ready()
        chat = normalise_chat_id(chat_id)
        chats = self._load_chats()
        entry = chats.get(chat)
        if entry is None:
            raise EngineNotFound(f"no chat {chat}")
        if "unreadCount" in values and values["unreadCount"] is None:  # marked unread
            values["unreadCount"] = max(1, int(entry.get("unreadCount") or 0))
        entry.update(values)
        write_json_atomic(self.profile_dir / CHATS_FILE, chats, durable=False)

    def _notify(self, chats: list[str], kind: EventKind, data: dict[str, Any]) -> None:
        """Hand ``data`` to the device of each mock account among ``chats`` (now)."""
        due = self._clock()
        for chat in dict.fromkeys(chats):
            phone = chat.split("@", 1)[0]
            if not chat.endswith("@c.us") or not self._is_registered(phone):
                continue
            pending = self._account_dir(phone) / PENDING_DIR
            pending.mkdir(parents=True, exist_ok=True)
            # Ties of due time (a fake clock) keep the order across accounts: wall time next.
            name = (f"{round(due * 1e9):020d}-{time.time_ns():020d}-"
                    f"{uuid.uuid4().hex[:12]}.json")
            write_json_atomic(pending / name, {"kind": kind.value, "data": data}, durable=False)

    def _deliver_to_group(self, gid: str, text: str, key: str, quoted: str | None,
                          timestamp: int) -> None:
        group = self._member_group(gid)
        me = self._me()
        if group["settings"].get("announce") and not group["participants"][me]["isAdmin"]:
            raise EngineError("only admins can send messages to this group")
        for member in group["participants"]:
            if member == me:
                continue
            self._notify([member], EventKind.MESSAGE, {
                "id": f"false_{gid}_{key}_{me}", "chatId": gid, "from": me,
                "to": gid, "author": me, "fromMe": False, "type": "text", "body": text,
                "timestamp": timestamp, "quotedMessageId": quoted})

    def _groups_dir(self) -> Path:
        return self.network_dir / GROUPS_DIR

    @contextlib.contextmanager
    def _groups_lock(self) -> Any:
        folder = self._groups_dir()
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / ".lock").open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _read_group(self, gid: str) -> dict[str, Any] | None:
        found = _read_json(self._groups_dir() / f"{gid}.json")
        return found if isinstance(found, dict) else None

    def _all_groups(self) -> list[dict[str, Any]]:
        try:
            names = sorted(n for n in os.listdir(self._groups_dir()) if n.endswith("@g.us.json"))
        except FileNotFoundError:
            return []
        found = (self._read_group(name[:-len(".json")]) for name in names)
        return [g for g in found if g is not None]

    def _save_group(self, group: dict[str, Any]) -> None:
        write_json_atomic(self._groups_dir() / f"{group['id']}.json", group, durable=False)

    def _member_group(self, group_id: str) -> dict[str, Any]:
        gid = normalise_chat_id(group_id)
        group = self._read_group(gid) if gid.endswith("@g.us") else None
        if group is None or self._me() not in group["participants"]:
            raise EngineNotFound(f"no group {gid} with this account in it")
        return group

    def _require_admin(self, group: dict[str, Any]) -> None:
        if not group["participants"][self._me()]["isAdmin"]:
            raise EngineError("only group admins can do this")

    def _new_invite_code(self) -> str:
        return secrets.token_urlsafe(16)[:22]

    def _group_view(self, group: dict[str, Any]) -> dict[str, Any]:
        return {"id": group["id"], "name": group["subject"], "subject": group["subject"],
                "description": group.get("description"), "owner": group.get("owner"),
                "creation": group.get("creation"),
                "participants": [{"id": pid, **flags}
                                 for pid, flags in group["participants"].items()],
                "settings": dict(group["settings"])}

    def _add(self, group: dict[str, Any], participants: list[str]) -> list[dict[str, Any]]:
        results = []
        for raw in participants:
            chat = normalise_chat_id(raw)
            if not chat.endswith("@c.us") or not self.check_number(chat).exists:
                results.append({"id": chat, "code": 404, "success": False,
                                "message": "not on WhatsApp"})
            elif chat in group["participants"]:
                results.append({"id": chat, "code": 409, "success": False,
                                "message": "already a participant"})
            else:
                group["participants"][chat] = {"isAdmin": False, "isSuperAdmin": False}
                results.append({"id": chat, "code": 200, "success": True, "message": "added"})
        return results

    def _change_one(self, group: dict[str, Any], action: str, raw: str) -> dict[str, Any]:
        chat = normalise_chat_id(raw)
        flags = group["participants"].get(chat)
        if flags is None:
            return {"id": chat, "code": 404, "success": False, "message": "not a participant"}
        if flags["isSuperAdmin"] and action in ("remove", "demote"):
            return {"id": chat, "code": 403, "success": False,
                    "message": "the group's creator cannot be removed or demoted"}
        if action == "remove":
            del group["participants"][chat]
        else:
            flags["isAdmin"] = action == "promote"
        return {"id": chat, "code": 200, "success": True, "message": f"{action}d"}

    def _change_group(self, group_id: str, what: str, **changes: Any) -> None:
        self._require_ready()
        me = self._me()
        with self._groups_lock():
            group = self._member_group(group_id)
            if what != "settings" and group["settings"].get("restrict"):
                self._require_admin(group)
            if what == "settings":
                self._require_admin(group)
                group["settings"].update(changes)
            else:
                group.update(changes)
            self._save_group(group)
        self._notify(list(group["participants"]), EventKind.GROUP_UPDATE,
                     {"groupId": group["id"], "action": what, "by": me, **changes})


__all__ = [
    "ECHO_ID",
    "ECHO_NAME",
    "MockEngine",
    "phone_for_session",
    "write_json_atomic",
]
