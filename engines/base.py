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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


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


@dataclass
class EngineOptions:
    """Settings an engine may read; each engine ignores what is not its own."""

    push_name: str = "OpenWA"
    qr_rotate_seconds: float = 20.0
    auto_scan_seconds: float = 5.0  # mock only; 0 = never
    ack_interval_seconds: float = 0.5  # mock only: sent -> delivered -> read spacing
    executable_path: str | None = None
    driver_path: str | None = None
    headless: bool = True
    extra_args: list[str] = field(default_factory=list)
    whatsapp_web_url: str = "https://web.whatsapp.com/"
    # selenium only
    wajs_bundle_path: str | None = None
    allowed_hosts: list[str] = field(default_factory=list)  # empty: resolve every host
    command_timeout: float = 10.0  # seconds a call into the page may take
    webdriver_manager: bool = True  # fetch a driver when the system has none
    driver_cache_dir: str | None = None  # webdriver-manager's cache
    offline: bool = False  # SE_OFFLINE: use only a cached driver, never download one
    event_delivery: str = "binding"  # "binding" (CDP) or "poll"
    extra: dict[str, Any] = field(default_factory=dict)


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

    def __init__(self, session_id: str, profile_dir: Path, options: EngineOptions) -> None:
        self.session_id = session_id
        self.profile_dir = Path(profile_dir)
        self.options = options
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
    ) -> SentMessage:
        """Send ``text``; ``message_id`` is our chosen id, reused on a redelivered send."""

    def find_sent(self, chat_id: str, message_id: str) -> SentMessage | None:
        """The message sent earlier under our ``message_id``, if the engine has it."""
        raise EngineUnsupported(f"{self.name} engine cannot look up sent messages")

    # -- queries ----------------------------------------------------------
    def check_number(self, number: str) -> NumberStatus:
        raise EngineUnsupported(f"{self.name} engine cannot check numbers")

    def contacts(self) -> list[dict[str, Any]]:
        raise EngineUnsupported(f"{self.name} engine cannot list contacts")

    def chats(self) -> list[dict[str, Any]]:
        raise EngineUnsupported(f"{self.name} engine cannot list chats")

    def groups(self) -> list[dict[str, Any]]:
        raise EngineUnsupported(f"{self.name} engine cannot list groups")
