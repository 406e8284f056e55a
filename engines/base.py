"""The engine protocol: what a session host asks of a WhatsApp engine.

An engine drives one WhatsApp account for one session. It knows nothing of Flask,
SQLAlchemy or Celery: the session host creates it with a profile directory, calls it
from one thread only (Selenium is not thread-safe), and drains its events between tasks
with :meth:`Engine.poll`.
"""
from __future__ import annotations

import enum
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePath
from typing import Any, ClassVar, TypeVar


class EngineError(Exception):
    """An engine call failed; the API maps it to 502."""


class EngineUnsupported(EngineError):
    """The engine cannot do this at all; the API maps it to 501 ``ENGINE_UNSUPPORTED``."""


class EngineNotReady(EngineError):
    """The account is not linked and connected; the API maps it to 409 ``SESSION_NOT_READY``."""


class EngineCrashed(EngineError):
    """The engine's process or connection is gone; the host restarts it from its profile."""


class EngineState(str, enum.Enum):
    """Where an engine is in its life; the host maps these to session statuses."""

    STARTING = "starting"
    QR = "qr"
    AUTHENTICATING = "authenticating"
    READY = "ready"
    DISCONNECTED = "disconnected"
    LOGGED_OUT = "logged_out"
    FAILED = "failed"
    CLOSED = "closed"


class EventKind(str, enum.Enum):
    """The kinds of event an engine emits through :meth:`Engine.poll`."""

    STATE = "state"  # data: {"state": EngineState value, "reason"?: str}
    QR = "qr"  # data: {"qr": raw QR string}
    AUTHENTICATED = "authenticated"  # data: {}
    READY = "ready"  # data: {"phone": digits, "pushName": str}
    MESSAGE = "message"  # data: an IncomingMessage as a dict
    ACK = "ack"  # data: {"messageId": wa id, "ack": "sent"|"delivered"|"read"}
    REVOKED = "revoked"  # data: {"messageId": wa id, "chatId": str}
    REACTION = "reaction"  # data: {"messageId", "chatId", "from", "emoji"}
    # -- chats, contacts, groups (issue 13.2/3) --
    GROUP_JOIN = "group_join"  # data: {"groupId", "participants": [ids], "by"?, "action"}
    GROUP_LEAVE = "group_leave"  # data: {"groupId", "participants": [ids], "by"?, "action"}
    GROUP_UPDATE = "group_update"  # data: {"groupId", "action", "by"?, ...what changed}
    PRESENCE = "presence"  # data: {"chatId", "from", "state": available|unavailable|typing|...}
    CALL = "call"  # data: {"callId", "from", "isVideo", "isGroup", "timestamp"}
    # -- message actions (issue 13.1)
    EDITED = "edited"  # data: {"messageId", "chatId", "body", "timestamp"?}
    POLL_VOTE = "poll_vote"  # data: {"messageId", "chatId", "from", "selectedOptions": [names]}


@dataclass(frozen=True)
class EngineEvent:
    kind: EventKind
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SentMessage:
    """What an engine answers for an accepted send."""

    message_id: str  # the serialised WhatsApp id, e.g. ``true_<chat>_<id>``
    timestamp: int  # epoch seconds


@dataclass(frozen=True)
class NumberStatus:
    exists: bool
    whatsapp_id: str | None


OptionsT = TypeVar("OptionsT", bound="EngineOptions")


def option(setting: str, default: Any = None) -> Any:
    """An engine option whose value a deployment gives through ``setting`` (the name of its
    environment variable, e.g. ``CHROMIUM_HEADLESS``): see :meth:`EngineOptions.from_settings`."""
    meta = {"setting": setting}
    if isinstance(default, list):
        items = list(default)
        return field(default_factory=lambda: list(items), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class EngineOptions:
    """What every engine may read. An engine with options of its own subclasses this,
    names each option's deployment setting with :func:`option`, and sets
    :attr:`Engine.options_class`: the session host then fills them without knowing them."""

    push_name: str = "OpenWA"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls: type[OptionsT], value_of: Callable[[str], Any]) -> OptionsT:
        """The options, each read with ``value_of(setting name)`` (paths become strings)."""
        values: dict[str, Any] = {}
        for spec in fields(cls):
            setting = spec.metadata.get("setting")
            if setting is None:
                continue
            value = value_of(setting)
            if isinstance(value, PurePath):
                value = str(value)
            elif isinstance(value, (list, tuple)):
                value = list(value)
            values[spec.name] = value
        return cls(**values)

    @classmethod
    def adopt(cls: type[OptionsT], options: EngineOptions) -> OptionsT:
        """``options`` as this class: kept when it is one, else its shared fields carried over
        (an engine given the base options runs on its own defaults)."""
        if isinstance(options, cls):
            return options
        shared = {spec.name: getattr(options, spec.name) for spec in fields(EngineOptions)}
        return cls(**shared)


_DIGITS = re.compile(r"^\+?[0-9][0-9 \-]{4,30}$")
_WA_ID = re.compile(r"^[0-9]{5,20}@c\.us$|^[0-9]{5,20}(-[0-9]{5,20})?@g\.us$")


def normalise_chat_id(value: str) -> str:
    """Accept a bare phone number or a WhatsApp id; return ``<digits>@c.us`` or the id.

    Raises ValueError for anything else.
    """
    value = value.strip()
    if _WA_ID.match(value):
        return value
    if _DIGITS.match(value):
        digits = re.sub(r"[^0-9]", "", value)
        if 5 <= len(digits) <= 20:
            return f"{digits}@c.us"
    raise ValueError("must be a phone number or a WhatsApp id (<digits>@c.us or <id>@g.us)")


class Engine(ABC):
    """One WhatsApp account behind one session.

    Calls come from one thread. ``start`` returns quickly; progress (QR, authenticated,
    ready) arrives as events from ``poll``. Capabilities an engine lacks raise
    :class:`EngineUnsupported`.
    """

    name: ClassVar[str] = ""
    #: Folders the engine keeps beside the profiles (under SESSION_DATA_PATH) that are not
    #: account state: a backup leaves them out and a restore leaves them where they are.
    shared_dirs: ClassVar[frozenset[str]] = frozenset()
    #: File names in a profile that only say "in use" (locks): a backup leaves them out, or a
    #: restored profile would look held by another process.
    lock_files: ClassVar[frozenset[str]] = frozenset()
    #: Methods beyond the protocol that the API may call for tests (the mock's ``simulate_*``).
    test_hooks: ClassVar[frozenset[str]] = frozenset()
    #: The engine's options (an :class:`EngineOptions` subclass when it has its own).
    options_class: ClassVar[type[EngineOptions]] = EngineOptions
    # -- scale (issue 18) ------------------------------------------------------------
    #: Message types whose send, given a ``message_id`` it has already sent, answers the first
    #: result instead of sending again (as the mock's does). For these the host need not
    #: commit ``sending`` before the engine call: a crash in between resends harmlessly.
    idempotent_sends: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, session_id: str, profile_dir: Path, options: EngineOptions) -> None:
        self.session_id = session_id
        self.profile_dir = Path(profile_dir)
        self.options = self.options_class.adopt(options)
        self._state = EngineState.CLOSED
        self._events: list[EngineEvent] = []

    # -- shared by the engines: the state machine and the event buffer ----------
    def _emit(self, kind: EventKind, data: dict[str, Any]) -> None:
        self._events.append(EngineEvent(kind, data))

    def _set_state(self, state: EngineState, reason: str | None = None) -> None:
        """Move to ``state`` and report it (a STATE event), once per change."""
        if state is self._state:
            return
        self._state = state
        data: dict[str, Any] = {"state": state.value}
        if reason:
            data["reason"] = reason
        self._emit(EventKind.STATE, data)

    def _require_ready(self) -> None:
        if self._state is not EngineState.READY:
            raise EngineNotReady(f"session {self.session_id} is {self._state.value}, not ready")

    # -- life cycle -------------------------------------------------------
    @abstractmethod
    def start(self) -> None:
        """Open the account from its profile; emit QR events if it is not linked."""

    @abstractmethod
    def close(self) -> None:
        """Release the browser/connection; the profile (and the link) is kept."""

    @abstractmethod
    def logout(self) -> None:
        """Unlink the device and wipe the profile; the next start needs a QR."""

    @property
    def state(self) -> EngineState:
        """The current state (kept by :meth:`_set_state`)."""
        return self._state

    @abstractmethod
    def poll(self) -> list[EngineEvent]:
        """Return (and forget) the events since the last poll. Never blocks for long."""

    def qr(self) -> str | None:
        """The raw QR string pending a scan, if any."""
        return None

    def request_pairing_code(self, phone_number: str) -> str:
        raise EngineUnsupported(f"{self.name} engine cannot link by pairing code")

    # -- messages ---------------------------------------------------------
    @abstractmethod
    def send_text(
        self,
        chat_id: str,
        text: str,
        *,
        message_id: str,
        quoted_message_id: str | None = None,
        mentions: list[str] | None = None,
        link_preview: bool = False,  # message actions (issue 13.1)
    ) -> SentMessage:
        """Send ``text``; ``message_id`` is our chosen id, reused on a redelivered send."""

    # -- media (issue 12) ---------------------------------------------------
    #: The media types :meth:`send_media` takes (the API's send-<kind> routes).
    MEDIA_KINDS: ClassVar[tuple[str, ...]] = ("image", "video", "audio", "document", "sticker")

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
        """Send the file at ``path`` (the host's local copy of the stored file, readable for
        the call only) as ``kind``; ``message_id`` as for :meth:`send_text`.

        Incoming media arrives as MESSAGE events whose ``media`` is ``{"mimetype",
        "filename"?, "path"}`` (a file the engine owns until the next poll) or ``{"mimetype",
        "filename"?, "base64"}``; the host stores it and replaces it with the stored file's
        fields."""
        raise EngineUnsupported(f"{self.name} engine cannot send {kind} messages")

    def find_sent(self, chat_id: str, message_id: str) -> SentMessage | None:
        """The message sent earlier under our ``message_id``, if the engine has it."""
        raise EngineUnsupported(f"{self.name} engine cannot look up sent messages")

    # -- message actions (issue 13.1) -------------------------------------
    # Sends take our ``message_id`` (reused on a redelivered send, as in send_text); the
    # other actions name the message acted on by its WhatsApp id and answer nothing.
    def send_location(self, chat_id: str, latitude: float, longitude: float, *, message_id: str,
                      description: str | None = None, address: str | None = None) -> SentMessage:
        raise EngineUnsupported(f"{self.name} engine cannot send locations")

    def send_contact(self, chat_id: str, contact_name: str, contact_number: str, vcard: str, *,
                     message_id: str) -> SentMessage:
        """A contact card; ``vcard`` is the card built by the gateway (an engine that builds
        its own from the name and number may ignore it)."""
        raise EngineUnsupported(f"{self.name} engine cannot send contacts")

    def send_poll(self, chat_id: str, name: str, options: list[str], multiple_answers: bool, *,
                  message_id: str) -> SentMessage:
        raise EngineUnsupported(f"{self.name} engine cannot send polls")

    def forward_message(self, to_chat_id: str, from_chat_id: str, wa_message_id: str, *,
                        message_id: str) -> SentMessage:
        raise EngineUnsupported(f"{self.name} engine cannot forward messages")

    def react(self, chat_id: str, wa_message_id: str, emoji: str) -> None:
        """React with ``emoji``; "" removes our reaction."""
        raise EngineUnsupported(f"{self.name} engine cannot react to messages")

    def delete_message(self, chat_id: str, wa_message_id: str, for_everyone: bool) -> None:
        raise EngineUnsupported(f"{self.name} engine cannot delete messages")

    def edit_message(self, chat_id: str, wa_message_id: str, text: str) -> None:
        raise EngineUnsupported(f"{self.name} engine cannot edit messages")

    def star_message(self, chat_id: str, wa_message_id: str, star: bool) -> None:
        raise EngineUnsupported(f"{self.name} engine cannot star messages")

    def pin_message(self, chat_id: str, wa_message_id: str, pin: bool,
                    duration_seconds: int | None = None) -> None:
        raise EngineUnsupported(f"{self.name} engine cannot pin messages")

    # -- queries ----------------------------------------------------------
    def check_number(self, number: str) -> NumberStatus:
        raise EngineUnsupported(f"{self.name} engine cannot check numbers")

    def contacts(self) -> list[dict[str, Any]]:
        raise EngineUnsupported(f"{self.name} engine cannot list contacts")

    def chats(self) -> list[dict[str, Any]]:
        raise EngineUnsupported(f"{self.name} engine cannot list chats")

    def groups(self) -> list[dict[str, Any]]:
        raise EngineUnsupported(f"{self.name} engine cannot list groups")

    # -- chats, contacts, groups (issue 13.2/3) ---------------------------------
    # Reads answer JSON-ready dicts; writes answer None (or the per-participant results).
    # ``chat_id``/``group_id``/``contact_id`` arrive normalised (``<digits>@c.us`` or
    # ``<id>@g.us``). Unknown ids raise :class:`EngineNotFound` (404).
    def contact(self, contact_id: str) -> dict[str, Any]:
        """``{id, number, name, pushName, isBusiness, isBlocked, about}``."""
        raise EngineUnsupported(f"{self.name} engine cannot look up a contact")

    def contact_picture(self, contact_id: str) -> str | None:
        """The profile picture's URL, or None when there is none."""
        raise EngineUnsupported(f"{self.name} engine cannot read profile pictures")

    def block_contact(self, contact_id: str, block: bool) -> None:
        raise EngineUnsupported(f"{self.name} engine cannot block contacts")

    def mark_chat_read(self, chat_id: str, read: bool) -> None:
        """Read (sending read receipts) or mark unread."""
        raise EngineUnsupported(f"{self.name} engine cannot mark chats read")

    def archive_chat(self, chat_id: str, archive: bool) -> None:
        raise EngineUnsupported(f"{self.name} engine cannot archive chats")

    def pin_chat(self, chat_id: str, pin: bool) -> None:
        raise EngineUnsupported(f"{self.name} engine cannot pin chats")

    def mute_chat(self, chat_id: str, duration: int | None) -> None:
        """Mute for ``duration`` seconds (None: until unmuted); ``duration=0`` unmutes."""
        raise EngineUnsupported(f"{self.name} engine cannot mute chats")

    def delete_chat(self, chat_id: str) -> None:
        raise EngineUnsupported(f"{self.name} engine cannot delete chats")

    def set_presence(self, presence: str) -> None:
        """``available`` or ``unavailable``."""
        raise EngineUnsupported(f"{self.name} engine cannot set presence")

    def set_chat_state(self, chat_id: str, state: str) -> None:
        """``typing``, ``recording`` or ``paused`` in a chat."""
        raise EngineUnsupported(f"{self.name} engine cannot show typing")

    def group_info(self, group_id: str) -> dict[str, Any]:
        """``{id, subject, description, owner, participants: [{id, isAdmin, isSuperAdmin}],
        settings: {announce, restrict}}``."""
        raise EngineUnsupported(f"{self.name} engine cannot read group info")

    def create_group(self, subject: str, participants: list[str]) -> dict[str, Any]:
        """The new group's info plus ``results``: one ``{id, code, success, message}`` each."""
        raise EngineUnsupported(f"{self.name} engine cannot create groups")

    def change_participants(self, group_id: str, action: str,
                            participants: list[str]) -> list[dict[str, Any]]:
        """``action``: add, remove, promote or demote; one ``{id, code, success, message}``
        per participant, in the order given."""
        raise EngineUnsupported(f"{self.name} engine cannot change group participants")

    def set_group_subject(self, group_id: str, subject: str) -> None:
        raise EngineUnsupported(f"{self.name} engine cannot change group subjects")

    def set_group_description(self, group_id: str, description: str) -> None:
        raise EngineUnsupported(f"{self.name} engine cannot change group descriptions")

    def set_group_settings(self, group_id: str, announce: bool | None,
                           restrict: bool | None) -> None:
        raise EngineUnsupported(f"{self.name} engine cannot change group settings")

    def group_invite_code(self, group_id: str, revoke: bool) -> str:
        """The invite code (a fresh one when ``revoke``)."""
        raise EngineUnsupported(f"{self.name} engine cannot read invite codes")

    def join_group(self, invite_code: str) -> str:
        """Join by invite code; the group's id."""
        raise EngineUnsupported(f"{self.name} engine cannot join groups")

    def leave_group(self, group_id: str) -> None:
        raise EngineUnsupported(f"{self.name} engine cannot leave groups")


class EngineNotFound(EngineError):
    """The contact, chat, group or invite code does not exist; the API maps it to 404."""
