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
    EngineNotReady,
    EngineOptions,
    EngineState,
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
NETWORK_DIR_NAME = "_mocknet"
PENDING_DIR = "pending"
#: ``options.extra`` key that moves the mock network elsewhere than beside the profiles.
NETWORK_DIR_OPTION = "mock_network_dir"

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
    test_hooks: ClassVar[frozenset[str]] = frozenset({"simulate_scan", "simulate_disconnect"})
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
        now = self._clock()
        sent = SentMessage(message_id=f"true_{chat}_{message_id}", timestamp=int(now))
        # Deliver before recording: a crash in between means a resend on redelivery, which the
        # recipient sees under the same message id, rather than a message silently lost.
        self._deliver(chat, text, message_id, quoted_message_id, sent.timestamp)
        self._record_sent(chat, message_id, sent)
        interval = self.options.ack_interval_seconds
        for delay, ack in ((0.0, "sent"), (interval, "delivered"), (2 * interval, "read")):
            self._schedule(
                now + delay,
                EngineEvent(
                    EventKind.ACK, {"messageId": sent.message_id, "chatId": chat, "ack": ack}
                ),
            )
        if chat == ECHO_ID:
            self._schedule(now + ECHO_DELAY_SECONDS, self._echo_event(text, now))
        self._note_chat(chat, sent.timestamp, incoming=False)
        return sent

    def find_sent(self, chat_id: str, message_id: str) -> SentMessage | None:
        """The earlier result for our ``message_id`` in this chat, also after a restart.

        Works in every state: it reads the profile directory only.
        """
        try:
            chat = normalise_chat_id(chat_id)
        except ValueError:
            return None
        return self._find_sent(chat, message_id)

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
        return [dict(chat) for chat in chats]

    def groups(self) -> list[dict[str, Any]]:
        self._require_ready()
        return []

    # -- internals: events and state --------------------------------------

    def _pending_dir(self) -> Path:
        assert self._phone is not None
        return self._account_dir(self._phone) / PENDING_DIR

    def _schedule(self, due: float, event: EngineEvent) -> None:
        """Have the network hand ``event`` to this device at ``due`` (on the engine's clock).

        Written without an fsync: it must outlive the host process (kill -9), as the sent
        log does, not the machine."""
        pending = self._pending_dir()
        pending.mkdir(parents=True, exist_ok=True)
        name = f"{round(due * 1e9):020d}-{next(self._sequence):08d}-{uuid.uuid4().hex[:12]}.json"
        write_json_atomic(pending / name, {"kind": event.kind.value, "data": event.data},
                          durable=False)

    def _release_due(self, now: float) -> None:
        """Emit the pending events due by ``now``, in due order; delete them next poll."""
        pending = self._pending_dir()
        try:
            names = sorted(n for n in os.listdir(pending)
                           if n.endswith(".json") and not n.startswith("."))
        except FileNotFoundError:
            return
        horizon = round(now * 1e9)
        for name in names:
            try:
                due = int(name.split("-", 1)[0])
            except ValueError:
                due = 0
            if due > horizon:
                break
            if name in self._consumed_names:
                continue
            path = pending / name
            record = _read_json(path)
            try:
                event = EngineEvent(EventKind(record["kind"]), dict(record["data"]))
            except (TypeError, KeyError, ValueError):
                if path.exists():
                    logger.warning("setting aside unreadable pending event %s", path)
                    with contextlib.suppress(OSError):
                        os.replace(path, path.with_suffix(".bad"))
                continue
            if event.kind is EventKind.MESSAGE:
                self._note_chat(event.data["chatId"], event.data["timestamp"], incoming=True)
            self._events.append(event)
            self._consumed.append(path)
            self._consumed_names.add(name)

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
        entry["timestamp"] = max(int(entry["timestamp"]), timestamp)
        # Sending into a chat means it has been read, as on the phone.
        entry["unreadCount"] = int(entry["unreadCount"]) + 1 if incoming else 0
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
        self._consumed.clear()
        self._consumed_names.clear()


__all__ = [
    "ECHO_ID",
    "ECHO_NAME",
    "MockEngine",
    "phone_for_session",
    "write_json_atomic",
]
