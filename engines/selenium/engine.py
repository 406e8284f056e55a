"""The selenium engine: one headless Chromium running WhatsApp Web per session.

Start-up: take our lock on the profile, clear what a dead browser left on it, start
chromedriver and Chromium (:mod:`engines.selenium.browser`), arm the page with the wa-js
bundle and our bridge on every new document, and open WHATSAPP_WEB_URL. Everything after
that arrives as bridge events (:mod:`engines.selenium.events`) that :meth:`poll` turns into
engine events; calls go through ``window.__openwa.call`` with bounded timeouts.

Failures: a dead browser, a dead chromedriver, a crashed renderer, a lost DevTools socket or
a page that stops answering all end the same way: everything of that browser is killed by pid,
our lock is released and the state becomes DISCONNECTED, so the host starts the engine again
from its profile (no QR: the link is in the profile). A logout from the phone kills the
browser, wipes the profile and ends in LOGGED_OUT.
"""
from __future__ import annotations

import base64
import json
import logging
import time
from pathlib import Path
from typing import Any, ClassVar

from selenium.common.exceptions import JavascriptException, TimeoutException, WebDriverException
from urllib3.exceptions import HTTPError as Urllib3Error

from engines.base import (
    Engine,
    EngineCrashed,
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
)
from engines.registry import register
from engines.selenium import profile as profiles
from engines.selenium.browser import Browser, launch
from engines.selenium.events import CdpChannel
from engines.selenium.options import SeleniumOptions

log = logging.getLogger(__name__)

#: Seconds a closing browser gets to flush its profile before it is killed.
QUIT_SECONDS = 3.0
#: Seconds a trivial script may take before the page counts as hung.
PROBE_SECONDS = 2
BRIDGE_SOURCE = Path(__file__).resolve().parent / "bridge.js"
_RUNNING = frozenset(
    {EngineState.STARTING, EngineState.QR, EngineState.AUTHENTICATING, EngineState.READY}
)
#: Pin durations and wa-js's PinExpiryDurationOption (message actions, issue 13.1).
PIN_OPTIONS = {86400: "OneDay", 604800: "SevenDays", 2592000: "ThirtyDays"}
#: WhatsApp ack numbers: -1 error, 0 pending, 1 server, 2 device, 3 read, 4 played.
ACKS = {1: "sent", 2: "delivered", 3: "read", 4: "read"}
#: On resuming a profile, the acks of our messages this recent are read back from the page
#: (at most RECONCILE_PER_CHAT messages per chat): those a dead host had not taken.
RECONCILE_SECONDS = 24 * 3600
RECONCILE_PER_CHAT = 50
#: WhatsApp message types we store, and their names in our API; others (system notices,
#: protocol messages, e2e notifications) are skipped.
TYPES = {"chat": "text", "image": "image", "video": "video", "ptt": "audio", "audio": "audio",
         "document": "document", "location": "location", "vcard": "contact",
         "multi_vcard": "contact", "sticker": "image",
         "poll_creation": "poll"}  # poll: message actions (issue 13.1)
# A WebDriver error with one of these in its message means the browser side is gone.
_FATAL_MESSAGES = ("tab crashed", "target crashed", "chrome not reachable", "disconnected",
                   "no such window", "session deleted", "invalid session id",
                   "target window already closed", "unable to receive message from renderer")

_CALL = ("return window.__openwa ? window.__openwa.call(arguments[0], arguments[1])"
         " : {ok: false, code: 'NO_BRIDGE', error: 'WhatsApp Web is still loading'};")


def wpp_config_script() -> str:
    """Set before wa-js runs: no Google Analytics, no device name of wa-js's own."""
    config = {"disableGoogleAnalytics": True, "googleAnalyticsId": None, "poweredBy": None,
              "deviceName": False, "sendStatusToDevice": False, "linkPreviewApiServers": None}
    return f"window.WPPConfig = Object.assign(window.WPPConfig || {{}}, {json.dumps(config)});"


@register
class SeleniumEngine(Engine):
    """WhatsApp Web in Chromium, driven by Selenium; see the module docstring."""

    name: ClassVar[str] = "selenium"
    options_class: ClassVar[type[EngineOptions]] = SeleniumOptions
    options: SeleniumOptions
    # Chromium's Singleton* locks, and LevelDB's in the profile's storage folders.
    lock_files: ClassVar[frozenset[str]] = frozenset({*profiles.SINGLETON_FILES, "lockfile", "LOCK"})
    #: Seconds between liveness checks of a page that no command has touched (a hang is
    #: otherwise only seen by the next command).
    health_check_seconds: ClassVar[float] = 30.0

    def __init__(self, session_id: str, profile_dir: Path, options: EngineOptions) -> None:
        super().__init__(session_id, profile_dir, options)
        self._browser: Browser | None = None
        self._channel: CdpChannel | None = None
        self._lock = profiles.ProfileLock(self.profile_dir)
        self._qr: str | None = None
        self._phone: str | None = None
        self._push_name: str | None = None
        self._next_health_check = 0.0
        self.command_timeout = max(1.0, float(self.options.command_timeout))
        self.use_binding = self.options.event_delivery != "poll"
        self.wajs_version: str | None = None  # reported by the bridge once WPP is ready
        self.last_error: str | None = None

    # -- protocol: life cycle ---------------------------------------------
    @property
    def browser(self) -> Browser | None:
        """The running browser (for tests and benchmarks)."""
        return self._browser

    @property
    def channel(self) -> CdpChannel | None:
        return self._channel

    def start(self) -> None:
        """Open WhatsApp Web on the profile; returns once the page is navigating."""
        if self._state in _RUNNING:
            return
        self._set_state(EngineState.STARTING)
        try:
            self._launch()
        except profiles.ProfileBusy as error:
            self._shutdown()
            self._set_state(EngineState.DISCONNECTED, reason=str(error))
            raise EngineError(str(error)) from None
        except EngineError as error:
            self._shutdown()
            self._set_state(EngineState.DISCONNECTED, reason=str(error))
            raise
        except (WebDriverException, Urllib3Error, OSError) as error:
            reason = f"Chromium did not start: {_short(error)}"
            self._shutdown()
            self._set_state(EngineState.DISCONNECTED, reason=reason)
            raise EngineError(reason) from None

    def _launch(self) -> None:
        bundle_path = self.options.wajs_bundle_path
        if not bundle_path:
            raise EngineError("WAJS_BUNDLE_PATH is not set (run `make wajs`)")
        try:
            bundle = Path(bundle_path).read_text(encoding="utf-8")
        except OSError:
            raise EngineError(
                f"wa-js bundle not found at {bundle_path} (run `make wajs`)") from None
        bridge = BRIDGE_SOURCE.read_text(encoding="utf-8")
        self._lock.acquire()
        data_dir = profiles.prepare(self.profile_dir)
        started = time.monotonic()
        self._browser = launch(self.options, data_dir, self.command_timeout)
        driver = self._browser.driver
        self._channel = CdpChannel(driver, self.use_binding)
        # Through chromedriver's own CDP session, which lives as long as the browser: armed
        # before WhatsApp's scripts run, again on every reload.
        for source in (wpp_config_script() + "\n" + bundle, bridge):
            driver.execute("executeCdpCommand", {"cmd": "Page.addScriptToEvaluateOnNewDocument",
                                                 "params": {"source": source}})
        driver.get(self.options.whatsapp_web_url)
        self._next_health_check = time.monotonic() + self.health_check_seconds
        log.info("session %s: Chromium %s started in %.2f s (driver pid %s)", self.session_id,
                 self._browser.browser_pid, time.monotonic() - started, self._browser.driver_pid)

    def close(self) -> None:
        """Close the browser; the profile (and the link) is kept."""
        self._shutdown(graceful=True)
        self._qr = None
        self._set_state(EngineState.CLOSED)

    def logout(self) -> None:
        """Unlink the device if the page can still say so, kill the browser, wipe the profile."""
        if self._browser is not None and self._state is EngineState.READY:
            try:
                self._call("logout", timeout=min(5.0, self.command_timeout))
            except EngineError as error:
                log.info("session %s: logout on the page failed (%s); wiping anyway",
                         self.session_id, error)
        self._logged_out("logged out")

    def poll(self) -> list[EngineEvent]:
        if self._browser is not None:
            self._check_health()
        if self._browser is not None:
            for event in self._bridge_events():
                self._apply(event)
        events, self._events = self._events, []
        return events

    def qr(self) -> str | None:
        return self._qr if self._state is EngineState.QR else None

    def request_pairing_code(self, phone_number: str) -> str:
        if self._state is not EngineState.QR:
            raise EngineNotReady("the account is not waiting to be linked")
        chat = normalise_chat_id(phone_number)
        if not chat.endswith("@c.us"):
            raise ValueError("a pairing code needs a phone number")
        code = str(self._call("pairingCode", chat.split("@", 1)[0]))
        return f"{code[:4]}-{code[4:]}" if len(code) == 8 else code

    # -- protocol: messages -------------------------------------------------
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
        self._require_ready()
        chat = normalise_chat_id(chat_id)
        if not message_id:
            raise ValueError("message_id must not be empty")
        sent = self._call("sendText", chat, text, message_id, quoted_message_id,
                          [normalise_chat_id(m) for m in mentions or []], link_preview)
        return SentMessage(message_id=str(sent["id"]),
                           timestamp=int(sent.get("timestamp") or time.time()))

    # -- media (issue 12) -----------------------------------------------------
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
        """``WPP.chat.sendFileMessage`` with the file as a data: URL (WebDriver carries the
        call's arguments as JSON: there is no other way into the page)."""
        self._require_ready()
        chat = normalise_chat_id(chat_id)
        if kind not in self.MEDIA_KINDS:
            raise EngineUnsupported(f"the selenium engine cannot send {kind} messages")
        if not message_id:
            raise ValueError("message_id must not be empty")
        size = Path(path).stat().st_size
        data_url = f"data:{mimetype};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")
        # A big file takes the page a while to upload: 10 s per 4 MiB on top of the usual.
        timeout = self.command_timeout + 2 + 10 * (size // (4 * 1024 * 1024) + 1)
        sent = self._call("sendFile", chat, data_url, kind, filename, caption, ptt, message_id,
                          quoted_message_id, timeout=timeout)
        return SentMessage(message_id=str(sent["id"]),
                           timestamp=int(sent.get("timestamp") or time.time()))

    def _incoming_media(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The file of an incoming media message, downloaded through wa-js (base64)."""
        if data.get("fromMe"):
            return None  # ours: stored when it was sent
        try:
            found = self._call("downloadMedia", data["id"], timeout=self.command_timeout + 30)
        except (EngineError, KeyError) as error:
            log.warning("session %s: could not download the media of %s: %s", self.session_id,
                        data.get("id"), error)
            return {"mimetype": data.get("mimetype"), "filename": data.get("filename")}
        return {"mimetype": found.get("mimetype") or data.get("mimetype"),
                "filename": data.get("filename"), "base64": found.get("base64") or ""}

    def find_sent(self, chat_id: str, message_id: str) -> SentMessage | None:
        try:
            chat = normalise_chat_id(chat_id)
        except ValueError:
            return None
        self._require_ready()
        found = self._call("findSent", f"true_{chat}_{message_id}")
        if not found:
            return None
        return SentMessage(message_id=str(found["id"]),
                           timestamp=int(found.get("timestamp") or time.time()))

    # -- message actions (issue 13.1) ---------------------------------------
    # Each is one bridge call onto WPP.chat.* (bridge.js, "message actions"); sends take our
    # id like sendText, so findSent finds a redelivered one.
    def send_location(self, chat_id: str, latitude: float, longitude: float, *, message_id: str,
                      description: str | None = None, address: str | None = None) -> SentMessage:
        return self._sent_by("sendLocation", chat_id, message_id, float(latitude),
                             float(longitude), description, address)

    def send_contact(self, chat_id: str, contact_name: str, contact_number: str, vcard: str, *,
                     message_id: str) -> SentMessage:
        # wa-js builds the card from the contact's id and name (its own vCard format).
        contact = normalise_chat_id(contact_number)
        return self._sent_by("sendContact", chat_id, message_id, contact, contact_name)

    def send_poll(self, chat_id: str, name: str, options: list[str], multiple_answers: bool, *,
                  message_id: str) -> SentMessage:
        return self._sent_by("sendPoll", chat_id, message_id, name, list(options),
                             0 if multiple_answers else 1)

    def forward_message(self, to_chat_id: str, from_chat_id: str, wa_message_id: str, *,
                        message_id: str) -> SentMessage:
        # WhatsApp Web gives a forwarded message an id of its own (not ours).
        return self._sent_by("forward", to_chat_id, message_id, wa_message_id)

    def react(self, chat_id: str, wa_message_id: str, emoji: str) -> None:
        self._require_ready()
        self._call("react", wa_message_id, emoji)

    def delete_message(self, chat_id: str, wa_message_id: str, for_everyone: bool) -> None:
        self._require_ready()
        self._call("deleteMessage", normalise_chat_id(chat_id), wa_message_id, bool(for_everyone))

    def edit_message(self, chat_id: str, wa_message_id: str, text: str) -> None:
        self._require_ready()
        self._call("editMessage", wa_message_id, text)

    def star_message(self, chat_id: str, wa_message_id: str, star: bool) -> None:
        self._require_ready()
        self._call("star", wa_message_id, bool(star))

    def pin_message(self, chat_id: str, wa_message_id: str, pin: bool,
                    duration_seconds: int | None = None) -> None:
        self._require_ready()
        option = PIN_OPTIONS.get(int(duration_seconds or 0)) if pin else None
        if pin and option is None:
            raise EngineError("a pin lasts 86400, 604800 or 2592000 seconds")
        self._call("pin", wa_message_id, bool(pin), option)

    def _sent_by(self, call: str, chat_id: str, message_id: str, *args: Any) -> SentMessage:
        self._require_ready()
        chat = normalise_chat_id(chat_id)
        if not message_id:
            raise ValueError("message_id must not be empty")
        sent = self._call(call, chat, message_id, *args)
        if not sent or not sent.get("id"):
            raise EngineError(f"WhatsApp Web did not say which message {call} sent")
        return SentMessage(message_id=str(sent["id"]),
                           timestamp=int(sent.get("timestamp") or time.time()))

    # -- protocol: queries ----------------------------------------------------
    def check_number(self, number: str) -> NumberStatus:
        self._require_ready()
        try:
            chat = normalise_chat_id(number)
        except ValueError:
            return NumberStatus(exists=False, whatsapp_id=None)
        found = self._call("checkNumber", chat)
        return NumberStatus(exists=bool(found["exists"]), whatsapp_id=found.get("id"))

    def contacts(self) -> list[dict[str, Any]]:
        self._require_ready()
        return list(self._call("contacts"))

    def chats(self) -> list[dict[str, Any]]:
        self._require_ready()
        return list(self._call("chats"))

    def groups(self) -> list[dict[str, Any]]:
        self._require_ready()
        return list(self._call("groups"))

    # -- calls into the page ------------------------------------------------
    def _call(self, name: str, *args: Any, timeout: float | None = None) -> Any:
        """Run bridge call ``name``; page-side failures raise EngineError, a dead or hung
        browser raises EngineCrashed (after killing it: the host restarts the engine)."""
        browser = self._browser
        if browser is None:
            raise EngineNotReady(f"session {self.session_id} has no browser ({self._state.value})")
        if timeout is not None:
            browser.set_timeout(timeout)
        try:
            reply = browser.driver.execute_script(_CALL, name, list(args))
        except TimeoutException:
            # chromedriver gave up waiting for the script: a slow WhatsApp, or a page that no
            # longer runs anything at all. A trivial script tells them apart.
            if self._responsive():
                raise EngineError(f"WhatsApp Web did not finish {name} within "
                                  f"{self.command_timeout:.0f} s") from None
            reason = (f"WhatsApp Web stopped answering (hung page: {name} and a probe timed "
                      "out); restarting the browser")
            self._lost(reason)
            raise EngineCrashed(reason) from None
        except JavascriptException as error:
            raise EngineError(f"{name} failed in the page: {_short(error)}") from None
        except WebDriverException as error:
            message = _short(error)
            if any(marker in message.lower() for marker in _FATAL_MESSAGES):
                self._lost(f"the browser went away during {name}: {message}")
                raise EngineCrashed(f"the browser went away during {name}; restarting it") from None
            raise EngineError(f"{name} failed: {message}") from None
        except (Urllib3Error, OSError) as error:
            if isinstance(error, TimeoutError) or "timed out" in str(error).lower():
                reason = (f"WhatsApp Web stopped answering ({name} took over "
                          f"{timeout or self.command_timeout + 2:.0f} s); restarting the browser")
            else:
                reason = f"chromedriver is gone ({type(error).__name__}); restarting the browser"
            self._lost(reason)
            raise EngineCrashed(reason) from None
        finally:
            if timeout is not None and self._browser is browser:
                browser.set_timeout(self.command_timeout + 2)
        self._next_health_check = time.monotonic() + self.health_check_seconds
        if not isinstance(reply, dict):
            raise EngineError(f"{name}: unexpected answer from the bridge")
        if reply.get("ok"):
            return reply.get("value")
        code, detail = reply.get("code"), str(reply.get("error") or name)
        if code in ("NOT_READY", "NO_BRIDGE"):
            raise EngineNotReady(detail)
        raise EngineError(f"WhatsApp Web refused {name}: {detail}")

    def _responsive(self) -> bool:
        """Does the page still run a trivial script within PROBE_SECONDS?"""
        browser = self._browser
        if browser is None:
            return False
        browser.set_timeout(PROBE_SECONDS)
        try:
            return bool(browser.driver.execute_script("return 1;") == 1)
        except (WebDriverException, Urllib3Error, OSError):
            return False
        finally:
            browser.set_timeout(self.command_timeout + 2)

    # -- health -------------------------------------------------------------
    def _check_health(self) -> None:
        browser, channel = self._browser, self._channel
        assert browser is not None
        if channel is not None and channel.crashed.is_set():
            self._lost("the page crashed (renderer); restarting the browser")
        elif not browser.browser_alive():
            self._lost("Chromium exited; restarting it from the profile")
        elif not browser.driver_alive():
            self._lost("chromedriver exited; its browser was killed, restarting both")
        elif self.use_binding and channel is not None and not channel.open:
            # A killed browser closes its DevTools socket while it exits, a moment before the
            # process is gone: look again briefly so the reason names what happened.
            if browser.wait_exit(0.5):
                self._lost("Chromium exited; restarting it from the profile")
            else:
                self._lost("lost the DevTools connection to Chromium; restarting it")
        elif time.monotonic() >= self._next_health_check:
            self._next_health_check = time.monotonic() + self.health_check_seconds
            try:
                self._call("state")
            except EngineCrashed:
                pass  # _lost() has run
            except EngineError as error:
                log.info("session %s: health check: %s", self.session_id, error)

    def _bridge_events(self) -> list[dict[str, Any]]:
        if self.use_binding:
            assert self._channel is not None
            return self._channel.take()
        try:
            drained = self._call("drain")
        except EngineNotReady:
            return []
        except EngineCrashed:
            return []
        except EngineError as error:
            log.info("session %s: drain failed: %s", self.session_id, error)
            return []
        return list(drained or [])

    def _lost(self, reason: str) -> None:
        log.warning("session %s: %s", self.session_id, reason)
        self.last_error = reason
        # Events already queued by the page still count (a message that came in just before).
        leftover = self._channel.take() if self._channel is not None else []
        self._shutdown()
        for event in leftover:
            self._apply(event)
        if self._state is not EngineState.LOGGED_OUT:
            self._qr = None
            self._set_state(EngineState.DISCONNECTED, reason=reason)

    def _logged_out(self, reason: str) -> None:
        # The browser first: Chromium must not write into the profile while it goes.
        self._shutdown()
        profiles.wipe(self.profile_dir)
        self._qr = None
        self._phone = self._push_name = None
        self._set_state(EngineState.LOGGED_OUT, reason=reason)

    def _shutdown(self, graceful: bool = False) -> None:
        channel, self._channel = self._channel, None
        browser, self._browser = self._browser, None
        if channel is not None:
            if graceful and browser is not None and browser.browser_alive() and channel.open:
                channel.close_browser()
                if not browser.wait_exit(QUIT_SECONDS):
                    log.info("session %s: Chromium did not close within %.0f s; killing it",
                             self.session_id, QUIT_SECONDS)
            channel.close()
        if browser is not None:
            browser.kill()
        self._lock.release()

    # -- bridge events -> engine events ---------------------------------------
    def _apply(self, event: dict[str, Any]) -> None:
        if self._state is EngineState.LOGGED_OUT:
            return  # what the page said after the logout (a fresh QR) is not for us
        kind, data = event.get("type"), event.get("data") or {}
        if kind == "hello":
            self.wajs_version = data.get("wajs")
            if self._state is EngineState.READY:
                # The page was reloaded: not ready until WhatsApp Web says so again.
                self._set_state(EngineState.AUTHENTICATING)
        elif kind == "qr":
            qr = data.get("qr")
            if qr and (qr != self._qr or self._state is not EngineState.QR):
                self._qr = qr
                self._set_state(EngineState.QR)
                self._emit(EventKind.QR, {"qr": qr})
        elif kind == "qr_idle":
            # WhatsApp Web stops rotating the QR after a while ("click to reload"): reload it.
            try:
                self._call("refreshQR")
            except EngineError as error:
                log.info("session %s: could not refresh the QR: %s", self.session_id, error)
        elif kind == "authenticated":
            self._qr = None
            if self._state is not EngineState.READY:
                self._set_state(EngineState.AUTHENTICATING)
                self._emit(EventKind.AUTHENTICATED, {})
        elif kind == "ready":
            self._qr = None
            self._phone = data.get("phone") or self._phone
            self._push_name = data.get("pushName") or self._push_name
            if self._state is not EngineState.READY:
                self._set_state(EngineState.READY)
                self._emit(EventKind.READY, {"phone": self._phone, "pushName": self._push_name})
                self._reconcile_acks()
        elif kind == "logout":
            self._logged_out("logged out from the phone")
        elif kind == "message":
            message = self._message(data)
            if message is not None:
                self._emit(EventKind.MESSAGE, message)
        elif kind == "ack":
            ack = ACKS.get(int(data.get("ack") or 0))
            if ack is not None:
                for message_id in data.get("ids") or []:
                    self._emit(EventKind.ACK, {"messageId": message_id,
                                               "chatId": data.get("chatId"), "ack": ack})
        elif kind == "revoke":
            self._emit(EventKind.REVOKED, {"messageId": data.get("messageId"),
                                           "chatId": data.get("chatId"),
                                           "from": data.get("from")})  # issue 13.1
        elif kind == "reaction":
            self._emit(EventKind.REACTION, {k: data.get(k) for k in
                                            ("messageId", "chatId", "from", "emoji")})
        # -- message actions (issue 13.1)
        elif kind == "edited":
            self._emit(EventKind.EDITED, {k: data.get(k) for k in
                                          ("messageId", "chatId", "body", "timestamp")})
        elif kind == "poll_vote":
            self._emit(EventKind.POLL_VOTE, {k: data.get(k) for k in
                                             ("messageId", "chatId", "from", "selectedOptions",
                                              "timestamp")})
        else:
            self._apply_chats_event(kind, data)  # issue 13.2/3

    def _reconcile_acks(self) -> None:
        """Ready again on a profile (a start, a takeover, a reload): report the acks WhatsApp
        Web now holds for our recent messages. The page's ack events of a browser that died,
        or that its host never took, are gone; WhatsApp Web keeps the levels. Every level up
        to the current one is reported, lowest first; the host applies acks only forward,
        so what it had already stored changes nothing."""
        try:
            found = self._call("recentAcks", RECONCILE_SECONDS, RECONCILE_PER_CHAT)
        except EngineCrashed:
            return  # _lost() has run; the next start reconciles
        except EngineError as error:
            log.info("session %s: could not read recent acks back: %s", self.session_id, error)
            return
        reported = 0
        for item in found or []:
            top = min(int(item.get("ack") or 0), 3)  # played (4) is read
            for number in range(1, top + 1):
                self._emit(EventKind.ACK, {"messageId": item.get("id"),
                                           "chatId": item.get("chatId"), "ack": ACKS[number]})
            reported += 1 if top > 0 else 0
        if reported:
            log.info("session %s: read back the acks of %d recent messages", self.session_id,
                     reported)

    def _message(self, data: dict[str, Any]) -> dict[str, Any] | None:
        kind = TYPES.get(str(data.get("type")))
        if kind is None or not data.get("id") or not data.get("chatId"):
            return None
        text = data.get("body") if kind == "text" else None
        message = {
            "id": data["id"], "chatId": data["chatId"], "from": data.get("from"),
            "to": data.get("to"), "fromMe": bool(data.get("fromMe")), "type": kind,
            "body": text, "caption": data.get("caption"),
            "timestamp": int(data.get("timestamp") or time.time()),
            "quotedMessageId": data.get("quotedMessageId"),
            "content": data.get("content"),  # message actions (issue 13.1)
        }
        if kind in self.MEDIA_KINDS:  # -- media (issue 12)
            message["media"] = self._incoming_media(data)
        return message

    # -- internals ---------------------------------------------------------------

    # -- chats, contacts, groups (issue 13.2/3) -------------------------------------
    # Each routine is one bridge call (engines/selenium/bridge.js) through wa-js:
    # WPP.chat.*, WPP.contact.*, WPP.blocklist.*, WPP.conn.markAvailable, WPP.group.*.
    def contact(self, contact_id: str) -> dict[str, Any]:
        self._require_ready()
        found = self._call("contact", normalise_chat_id(contact_id))
        if not found:
            raise EngineNotFound(f"{contact_id} is not a known contact")
        return dict(found)

    def contact_picture(self, contact_id: str) -> str | None:
        self._require_ready()
        url = self._call("contactPicture", normalise_chat_id(contact_id))
        return str(url) if url else None

    def block_contact(self, contact_id: str, block: bool) -> None:
        self._require_ready()
        self._call("blockContact", normalise_chat_id(contact_id), bool(block))

    def mark_chat_read(self, chat_id: str, read: bool) -> None:
        self._require_ready()
        self._call("markChat", normalise_chat_id(chat_id), bool(read))

    def archive_chat(self, chat_id: str, archive: bool) -> None:
        self._require_ready()
        self._call("archiveChat", normalise_chat_id(chat_id), bool(archive))

    def pin_chat(self, chat_id: str, pin: bool) -> None:
        self._require_ready()
        self._call("pinChat", normalise_chat_id(chat_id), bool(pin))

    def mute_chat(self, chat_id: str, duration: int | None) -> None:
        self._require_ready()
        self._call("muteChat", normalise_chat_id(chat_id), duration)

    def delete_chat(self, chat_id: str) -> None:
        self._require_ready()
        self._call("deleteChat", normalise_chat_id(chat_id))

    def set_presence(self, presence: str) -> None:
        self._require_ready()
        if presence not in ("available", "unavailable"):
            raise ValueError("presence must be available or unavailable")
        self._call("setPresence", presence)

    def set_chat_state(self, chat_id: str, state: str) -> None:
        self._require_ready()
        if state not in ("typing", "recording", "paused"):
            raise ValueError("state must be typing, recording or paused")
        self._call("chatState", normalise_chat_id(chat_id), state)

    def group_info(self, group_id: str) -> dict[str, Any]:
        self._require_ready()
        found = self._call("groupInfo", normalise_chat_id(group_id))
        if not found:
            raise EngineNotFound(f"no group {group_id}")
        return dict(found)

    def create_group(self, subject: str, participants: list[str]) -> dict[str, Any]:
        self._require_ready()
        return dict(self._call("createGroup", subject,
                               [normalise_chat_id(p) for p in participants]))

    def change_participants(self, group_id: str, action: str,
                            participants: list[str]) -> list[dict[str, Any]]:
        self._require_ready()
        if action not in ("add", "remove", "promote", "demote"):
            raise ValueError("action must be add, remove, promote or demote")
        return list(self._call("participants", normalise_chat_id(group_id), action,
                               [normalise_chat_id(p) for p in participants]))

    def set_group_subject(self, group_id: str, subject: str) -> None:
        self._require_ready()
        self._call("groupSubject", normalise_chat_id(group_id), subject)

    def set_group_description(self, group_id: str, description: str) -> None:
        self._require_ready()
        self._call("groupDescription", normalise_chat_id(group_id), description)

    def set_group_settings(self, group_id: str, announce: bool | None,
                           restrict: bool | None) -> None:
        self._require_ready()
        self._call("groupSettings", normalise_chat_id(group_id), announce, restrict)

    def group_invite_code(self, group_id: str, revoke: bool) -> str:
        self._require_ready()
        return str(self._call("inviteCode", normalise_chat_id(group_id), bool(revoke)))

    def join_group(self, invite_code: str) -> str:
        self._require_ready()
        joined = self._call("joinGroup", invite_code)
        if not joined:
            raise EngineNotFound("the invite code was not accepted")
        return str(joined)

    def leave_group(self, group_id: str) -> None:
        self._require_ready()
        self._call("leaveGroup", normalise_chat_id(group_id))

    #: wa-js group.participant_changed actions -> our event kinds.
    GROUP_ACTIONS: ClassVar[dict[str, EventKind]] = {
        "add": EventKind.GROUP_JOIN, "join": EventKind.GROUP_JOIN,
        "remove": EventKind.GROUP_LEAVE, "leaver": EventKind.GROUP_LEAVE,
        "promote": EventKind.GROUP_UPDATE, "demote": EventKind.GROUP_UPDATE,
        # gp2 notifications (bridge): what changed in the group's info
        "subject": EventKind.GROUP_UPDATE, "description": EventKind.GROUP_UPDATE,
        "announce": EventKind.GROUP_UPDATE, "restrict": EventKind.GROUP_UPDATE}

    def _apply_chats_event(self, kind: Any, data: dict[str, Any]) -> None:
        """Bridge events of this area: group, presence, call."""
        if kind == "group":
            action = str(data.get("action") or "")
            event_kind = self.GROUP_ACTIONS.get(action)
            if event_kind is not None and data.get("groupId"):
                event = {"groupId": data["groupId"],
                         "participants": list(data.get("participants") or []),
                         "by": data.get("by"), "action": "leave" if action == "leaver" else action}
                if action in ("subject", "description"):  # the new text, as the mock reports it
                    event[action] = data.get("body")
                elif action in ("announce", "restrict"):
                    event["action"] = "settings"
                    event["changed"] = action
                self._emit(event_kind, event)
        elif kind == "presence":
            chat = data.get("chatId")
            for person in data.get("participants") or []:  # a group: who is typing
                self._emit(EventKind.PRESENCE, {"chatId": chat, "from": person.get("id"),
                                                "state": person.get("state")})
            if not data.get("participants"):
                self._emit(EventKind.PRESENCE, {"chatId": chat, "from": chat,
                                                "state": data.get("state")})
        elif kind == "call":
            self._emit(EventKind.CALL, {k: data.get(k) for k in
                                        ("callId", "from", "isVideo", "isGroup", "timestamp")})


def _short(error: BaseException) -> str:
    message = getattr(error, "msg", None) or str(error) or type(error).__name__
    return str(message).strip().splitlines()[0][:300]
