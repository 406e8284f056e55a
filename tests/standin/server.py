"""A local stand-in for WhatsApp Web: the page our engine drives, and the servers behind it.

WhatsApp Web cannot be reached from the test machine. This server plays both of its ends:

- ``GET /`` serves a page that, like WhatsApp Web with wa-js loaded, offers ``window.WPP``
  with the calls and events our bridge uses (``static/standin.js``). The real wa-js bundle
  the engine injects runs first; the page notes what it found of it and then replaces
  ``window.WPP`` with its own. The page keeps its device id and its link in IndexedDB, in
  the browser profile, as WhatsApp Web does, so a restarted browser resumes without a QR.
- ``/wa/*`` are the "WhatsApp servers" the page talks to: QR codes (refs that rotate),
  sends, history lookups (a linked page syncs its messages and their ack levels when it
  opens), pairing codes, and a server-sent event stream per device.
- ``/control/*`` is the phone and the rest of the world, driven by the tests: scan a QR,
  enter a pairing code, deliver an incoming message, move an ack, log out from the phone,
  reload the page, hang the page. ``GET /control/state`` shows what the server knows,
  including what every page saw of the real wa-js and every message our engine sent.

Run alone with ``python -m tests.standin [port]`` to look at it in a browser.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

STATIC = Path(__file__).resolve().parent / "static"
KEEPALIVE_SECONDS = 10.0
_PAIRING_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _b64(size: int) -> str:
    return base64.b64encode(secrets.token_bytes(size)).decode("ascii")


@dataclass
class Device:
    """One browser profile that has loaded the page: a would-be linked device."""

    id: str
    phone: str | None = None
    push_name: str | None = None
    code: str | None = None  # the QR string now on screen
    keys: str = field(default_factory=lambda: ",".join((_b64(32), _b64(32), _b64(32))))
    pairing: tuple[str, str] | None = None  # (code, phone) waiting to be entered
    outbox: list[dict[str, Any]] = field(default_factory=list)
    streams: int = 0
    loads: int = 0
    generation: int = 0  # bumped by each page load: older event streams end
    saw: dict[str, Any] | None = None  # what the page found of the real wa-js

    def view(self) -> dict[str, Any]:
        return {"device": self.id, "phone": self.phone, "pushName": self.push_name,
                "linked": self.phone is not None, "qr": self.code, "streams": self.streams,
                "loads": self.loads, "saw": self.saw, "pending": len(self.outbox)}


class StandIn:
    """The stand-in server; ``start()`` serves on 127.0.0.1 at a free port, ``url`` is the page."""

    def __init__(self, port: int = 0, qr_rotate_ms: int = 20000, qr_max_rotations: int = 6) -> None:
        self.lock = threading.Condition()
        self.devices: dict[str, Device] = {}
        self.sent: list[dict[str, Any]] = []  # every message the page sent, oldest first
        self.messages: dict[str, dict[str, Any]] = {}  # by serialized id, per device: see _key
        self.pushed: dict[str, float] = {}  # incoming message id -> time.time() it was pushed
        self.config = {"qrRotateMs": qr_rotate_ms, "qrMaxRotations": qr_max_rotations}
        self.requests: list[str] = []
        # -- chats, contacts, groups (issue 13.2/3) --
        self.calls: list[dict[str, Any]] = []  # every recorded WPP call of the pages
        self.groups: dict[str, dict[str, Any]] = {}
        self.blocked: set[str] = set()
        self.media: dict[str, tuple[str, bytes]] = {}  # -- media (issue 12): id -> (mimetype, bytes)
        self.actions: list[dict[str, Any]] = []  # message actions (issue 13.1): page_action
        handler = type("Handler", (_Handler,), {"standin": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        # A host name, not an IP: the engine's resolver rules let exactly ``localhost`` through.
        return f"http://localhost:{self.port}/"

    def start(self) -> "StandIn":
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="standin",
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        with self.lock:
            self.lock.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- the phone and the world (also used in-process by tests) -------------------
    def device_for(self, phone: str | None = None, device: str | None = None,
                   qr: str | None = None) -> Device | None:
        with self.lock:
            for candidate in self.devices.values():
                if device is not None and candidate.id == device:
                    return candidate
                if phone is not None and candidate.phone == phone:
                    return candidate
                if qr is not None and candidate.code == qr:
                    return candidate
        return None

    def targets(self, body: dict[str, Any]) -> list[Device]:
        if any(body.get(k) for k in ("phone", "device", "qr")):
            found = self.device_for(body.get("phone"), body.get("device"), body.get("qr"))
            return [found] if found else []
        with self.lock:
            return [d for d in self.devices.values() if d.streams > 0]

    def push(self, device: Device, event: dict[str, Any]) -> None:
        with self.lock:
            device.outbox.append(event)
            self.lock.notify_all()

    def scan(self, qr: str, phone: str | None = None, push_name: str = "Stand-in Phone") -> Device:
        device = self.device_for(qr=qr)
        if device is None:
            raise LookupError("no device shows this QR code (expired or never shown)")
        phone = phone or "1555" + "".join(secrets.choice("0123456789") for _ in range(7))
        self._link(device, phone, push_name)
        return device

    def enter_pairing_code(self, code: str, push_name: str = "Stand-in Phone") -> Device:
        with self.lock:
            found = [d for d in self.devices.values() if d.pairing and d.pairing[0] == code]
        if not found:
            raise LookupError("no device waits for this pairing code")
        device = found[0]
        assert device.pairing is not None
        self._link(device, device.pairing[1], push_name)
        return device

    def _link(self, device: Device, phone: str, push_name: str) -> None:
        with self.lock:
            device.phone, device.push_name = phone, push_name
            device.code, device.pairing = None, None
        self.push(device, {"type": "linked", "phone": phone, "pushName": push_name})

    def incoming(self, phone: str, sender: str, body: str, key: str | None = None,
                 quoted: str | None = None, push: bool = True) -> dict[str, Any]:
        device = self.device_for(phone=phone)
        if device is None:
            raise LookupError(f"no device is linked as {phone}")
        key = key or "3A" + secrets.token_hex(9).upper()
        chat = f"{sender}@c.us"
        message = {"id": f"false_{chat}_{key}", "key": key, "chat": chat, "from": chat,
                   "to": f"{phone}@c.us", "fromMe": False, "body": body, "type": "chat",
                   "t": int(time.time()), "quoted": quoted}
        with self.lock:
            self.messages[self._key(device, message["id"])] = message
            self.pushed[message["id"]] = time.time()
        if push:
            self.push(device, {"type": "message", "message": message})
        return message

    def ack(self, message_id: str, ack: int) -> Device:
        with self.lock:
            owners = [d for d in self.devices.values()
                      if self._key(d, message_id) in self.messages]
        if not owners:
            raise LookupError(f"no message {message_id}")
        with self.lock:
            message = self.messages[self._key(owners[0], message_id)]
            message["ack"] = max(int(message.get("ack") or 0), ack)  # the servers keep it
            chat = message["chat"]
        self.push(owners[0], {"type": "ack", "id": message_id, "chat": chat, "ack": ack})
        return owners[0]

    def logout_from_phone(self, phone: str) -> Device:
        device = self.device_for(phone=phone)
        if device is None:
            raise LookupError(f"no device is linked as {phone}")
        with self.lock:
            device.phone = device.push_name = None
        self.push(device, {"type": "logout"})
        return device

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"devices": [d.view() for d in self.devices.values()],
                    "sent": list(self.sent), "config": dict(self.config)}

    @staticmethod
    def _key(device: Device, message_id: str) -> str:
        return f"{device.id}/{message_id}"

    # -- what the page asks ----------------------------------------------------------
    def page_hello(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            device_id = str(body.get("device") or "")
            device = self.devices.get(device_id)
            if device is None:
                device = self.devices[device_id] = Device(device_id)
            device.loads += 1
            device.generation += 1
            self.lock.notify_all()
            device.saw = body.get("saw")
            linked = device.phone is not None and body.get("phone") == device.phone
            if body.get("phone") and not linked:
                # The page kept a link the phone has since removed: it must log out.
                return {"linked": False, "revoked": True, "config": dict(self.config)}
            return {"linked": linked, "phone": device.phone if linked else None,
                    "pushName": device.push_name if linked else None,
                    "config": dict(self.config)}

    def page_code(self, device_id: str) -> dict[str, Any]:
        with self.lock:
            device = self.devices[device_id]
            device.code = f"2@{_b64(54)},{device.keys}"
            return {"fullCode": device.code, "ref": device.code.split(",", 1)[0][2:]}

    def page_idle(self, device_id: str) -> None:
        with self.lock:
            self.devices[device_id].code = None

    def page_send(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            device = self.devices[str(body["device"])]
            if device.phone is None:
                raise PermissionError("this device is not linked")
            chat = str(body["to"])
            key = str(body.get("id") or "3EB0" + secrets.token_hex(10).upper())
            serialized = f"true_{chat}_{key}"
            existing = self.messages.get(self._key(device, serialized))
            if existing is not None:
                return existing
            message = {"id": serialized, "key": key, "chat": chat, "from": f"{device.phone}@c.us",
                       "to": chat, "fromMe": True, "body": body.get("body"), "type": "chat",
                       "t": int(time.time()), "quoted": body.get("quoted"),
                       "mentions": body.get("mentions") or [], "ack": 1,
                       "linkPreview": bool(body.get("linkPreview"))}  # issue 13.1
            if body.get("data") is not None:  # -- media (issue 12): a file message
                message.update(self._media_fields(serialized, body))
            self.messages[self._key(device, serialized)] = message
            self.sent.append({**message, "device": device.id})
            return message

    # -- media (issue 12) -------------------------------------------------------------------
    def _media_fields(self, serialized: str, body: dict[str, Any]) -> dict[str, Any]:
        """A file message's fields; its bytes are kept aside (``/wa/media`` serves them)."""
        data = base64.b64decode(str(body["data"]))
        self.media[serialized] = (str(body.get("mimetype") or "application/octet-stream"), data)
        return {"type": str(body.get("type") or "document"), "mimetype": body.get("mimetype"),
                "filename": body.get("filename"), "caption": body.get("caption"),
                "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def incoming_media(self, phone: str, sender: str, body: dict[str, Any]) -> dict[str, Any]:
        """A contact sends the device a file (``body``: type, mimetype, filename?, caption?,
        data as base64)."""
        message = self.incoming(phone, sender, "", push=False)
        with self.lock:
            message.update(self._media_fields(message["id"], body))
            message["body"] = None
        device = self.device_for(phone=phone)
        assert device is not None
        self.push(device, {"type": "message", "message": message})
        return message

    def page_media(self, device_id: str, message_id: str) -> tuple[str, bytes] | None:
        with self.lock:
            if self._key(self.devices[device_id], message_id) not in self.messages:
                return None
            return self.media.get(message_id)

    def page_message(self, device_id: str, message_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.messages.get(self._key(self.devices[device_id], message_id))

    def page_history(self, device_id: str) -> list[dict[str, Any]]:
        """What a linked device syncs when it opens: its messages, with their ack levels."""
        prefix = f"{device_id}/"
        with self.lock:
            found = [dict(m) for key, m in self.messages.items() if key.startswith(prefix)]
        return sorted(found, key=lambda m: m["t"])

    def page_pairing(self, device_id: str, phone: str) -> str:
        code = "".join(secrets.choice(_PAIRING_ALPHABET) for _ in range(8))
        with self.lock:
            self.devices[device_id].pairing = (code, phone)
        return code

    # -- message actions (issue 13.1) ------------------------------------------------------------
    #: The wa-js sends that make a message: its WhatsApp type, and what it carries.
    SEND_CALLS = {"sendLocationMessage": "location", "sendVCardContactMessage": "vcard",
                  "sendCreatePollMessage": "poll_creation", "forwardMessages": "forward"}
    #: /control/actions/<name>: what a peer or the phone does, and the wa-js event it makes.
    ACTION_EVENTS = {"reaction": "chat.new_reaction", "revoke": "chat.msg_revoke",
                     "edit": "chat.msg_edited", "vote": "chat.poll_response"}

    def page_action(self, body: dict[str, Any]) -> dict[str, Any]:
        """A WPP.chat.* call of the page: recorded in ``actions``; a send makes a message."""
        call, args = str(body["call"]), list(body.get("args") or [])
        with self.lock:
            device = self.devices[str(body["device"])]
            if device.phone is None:
                raise PermissionError("this device is not linked")
            self.actions.append({"device": device.id, "call": call, "args": args})
        kind = self.SEND_CALLS.get(call)
        if kind is None:
            return {"ok": True}
        chat = str(args[0])
        options = args[-1] if isinstance(args[-1], dict) and call != "forwardMessages" else {}
        extra: dict[str, Any] = {}
        text: str | None = None
        if kind == "location":
            extra = {"lat": options.get("lat"), "lng": options.get("lng"),
                     "loc": options.get("name"), "address": options.get("address")}
        elif kind == "vcard":
            contact = args[1]
            text = (f"BEGIN:VCARD\nVERSION:3.0\nFN:{contact['name']}\n"
                    f"TEL;waid={str(contact['id']).split('@')[0]}:+{str(contact['id']).split('@')[0]}"
                    "\nEND:VCARD")
        elif kind == "poll_creation":
            extra = {"pollName": args[1], "pollSelectableOptionsCount": options.get("selectableCount"),
                     "pollOptions": [{"localId": i, "name": n} for i, n in enumerate(args[2])]}
        else:
            with self.lock:
                source = self.messages.get(self._key(device, str(args[1][0])))
            if source is None:
                raise LookupError(f"no message {args[1][0]} to forward")
            kind, text = source.get("type") or "chat", source.get("body")
        message = self.page_send({"device": device.id, "to": chat, "body": text,
                                  "id": options.get("messageId")})
        with self.lock:
            message["type"], message["extra"] = kind, extra
        return message

    def action_event(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """The phone or a peer acted on a message of device ``phone``: push the wa-js event."""
        event = self.ACTION_EVENTS.get(name)
        device = self.device_for(phone=str(body.get("phone")))
        if event is None or device is None:
            raise LookupError(f"no action {name} or no device linked as {body.get('phone')}")
        value = {k: v for k, v in body.items() if k != "phone"}
        value.setdefault("t", int(time.time()))
        value.setdefault("id", f"false_{value.get('chat')}_3A{secrets.token_hex(8).upper()}")
        self.push(device, {"type": "action_event", "name": event, "value": value})
        return {"ok": True}

    def page_logout(self, device_id: str) -> None:
        with self.lock:
            device = self.devices[device_id]
            device.phone = device.push_name = None
            device.outbox.clear()

    # -- chats, contacts, groups (issue 13.2/3): wa-js calls, recorded and answered ----------
    def page_call(self, body: dict[str, Any]) -> Any:
        """Record one WPP call of the page (``calls``) and answer it like WhatsApp would."""
        name, args = str(body["name"]), list(body.get("args") or [])
        with self.lock:
            device = self.devices[str(body["device"])]
            self.calls.append({"device": device.id, "phone": device.phone, "name": name,
                               "args": args})
            me = f"{device.phone}@c.us"
            return self._answer(me, name, args)

    def calls_named(self, name: str) -> list[list[Any]]:
        with self.lock:
            return [c["args"] for c in self.calls if c["name"] == name]

    def _answer(self, me: str, name: str, args: list[Any]) -> Any:
        groups = self.groups
        if name == "contact.get":
            user = str(args[0]).split("@")[0]
            return None if user.endswith("0000") else {
                "id": f"{user}@c.us", "name": f"Contact {user}", "pushname": f"Push {user}",
                "isBusiness": False}
        if name == "contact.getStatus":
            return {"id": args[0], "status": "busy"}
        if name == "contact.getProfilePictureUrl":
            return None if str(args[0]).startswith("1555999") else f"https://pps.whatsapp.net/{args[0]}.jpg"
        if name == "blocklist.isBlocked":
            return args[0] in self.blocked
        if name in ("blocklist.blockContact", "blocklist.unblockContact"):
            (self.blocked.add if name == "blocklist.blockContact" else self.blocked.discard)(args[0])
            return {"wid": args[0], "isBlocked": args[0] in self.blocked}
        if name == "group.create":
            gid = f"120363{secrets.randbelow(10**12):012d}@g.us"
            people = {me: {"isAdmin": True, "isSuperAdmin": True}}
            result = {}
            for pid in args[1]:
                code = 403 if str(pid).endswith("0000@c.us") else 200
                if code == 200:
                    people[pid] = {"isAdmin": False, "isSuperAdmin": False}
                result[pid] = {"wid": pid, "code": code, "invite_code": None,
                               "invite_code_exp": None}
            groups[gid] = {"subject": args[0], "desc": None, "owner": me, "announce": False,
                           "restrict": False, "creation": int(time.time()), "people": people,
                           "code": secrets.token_hex(8)}
            return {"gid": gid, "participants": result}
        if name == "group.getAllGroups":
            return [{"id": gid, "name": g["subject"], "groupMetadata": {"subject": g["subject"]}}
                    for gid, g in groups.items() if me in g["people"]]
        group = groups.get(str(args[0])) if args else None
        if name == "chat.get":
            if group is None:
                return None
            return {"id": args[0], "name": group["subject"], "groupMetadata": {
                "subject": group["subject"], "desc": group["desc"], "owner": group["owner"],
                "announce": group["announce"], "restrict": group["restrict"],
                "creation": group["creation"]}}
        if name == "group.join":
            found = [gid for gid, g in groups.items() if g["code"] == args[0]]
            if not found:
                raise LookupError("invite code not found")
            groups[found[0]]["people"][me] = {"isAdmin": False, "isSuperAdmin": False}
            return {"id": found[0], "pendingApproval": False}
        if name.startswith("group.") and group is None:
            raise LookupError(f"no group {args[0] if args else ''}")
        if name == "group.getParticipants":
            return [{"id": pid, **flags} for pid, flags in group["people"].items()]
        if name == "group.addParticipants":
            out = {}
            for pid in args[1]:
                code = 409 if pid in group["people"] else 200
                group["people"].setdefault(pid, {"isAdmin": False, "isSuperAdmin": False})
                out[pid] = {"wid": pid, "code": code, "message": "ok" if code == 200 else "exists",
                            "invite_code": None, "invite_code_exp": None}
            return out
        if name in ("group.removeParticipants", "group.promoteParticipants",
                    "group.demoteParticipants"):
            for pid in args[1]:
                if name == "group.removeParticipants":
                    group["people"].pop(pid, None)
                elif pid in group["people"]:
                    group["people"][pid]["isAdmin"] = name == "group.promoteParticipants"
            return None
        if name == "group.setSubject":
            group["subject"] = args[1]
        elif name == "group.setDescription":
            group["desc"] = args[1]
        elif name == "group.setProperty":
            group["announce" if args[1] == "announcement" else args[1]] = bool(args[2])
        elif name == "group.getInviteCode":
            return group["code"]
        elif name == "group.revokeInviteCode":
            group["code"] = secrets.token_hex(8)
            return group["code"]
        elif name == "group.leave":
            group["people"].pop(me, None)
            return None
        return True


class _Handler(BaseHTTPRequestHandler):
    standin: StandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib's name)
        self.standin.requests.append(f"{self.command} {self.path}")

    # -- plumbing ------------------------------------------------------------------
    def _json(self, value: Any, status: int = 200) -> None:
        data = json.dumps(value).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        value = json.loads(raw or b"{}")
        return value if isinstance(value, dict) else {}

    def _static(self, name: str, mimetype: str) -> None:
        data = (STATIC / name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", mimetype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    # -- routes --------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 (stdlib's name)
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/":
            self._static("index.html", "text/html; charset=utf-8")
        elif url.path == "/standin.js":
            self._static("standin.js", "application/javascript; charset=utf-8")
        elif url.path == "/wa/events":
            self._events(query["device"])
        elif url.path == "/wa/history":
            self._json(self.standin.page_history(query["device"]))
        elif url.path == "/wa/message":
            found = self.standin.page_message(query["device"], query["id"])
            self._json(found, 200 if found else 404)
        elif url.path == "/wa/media":  # -- media (issue 12)
            found_media = self.standin.page_media(query["device"], query["id"])
            if found_media is None:
                self._json({"error": "not found"}, 404)
            else:
                self.send_response(200)
                self.send_header("Content-Type", found_media[0])
                self.send_header("Content-Length", str(len(found_media[1])))
                self.end_headers()
                self.wfile.write(found_media[1])
        elif url.path == "/control/state":
            self._json(self.standin.state())
        else:
            self._json({"error": "not found"}, 404)

    def do_POST(self) -> None:  # noqa: N802 (stdlib's name)
        path = urlparse(self.path).path
        body = self._body()
        standin = self.standin
        try:
            if path == "/wa/hello":
                self._json(standin.page_hello(body))
            elif path == "/wa/qr":
                self._json(standin.page_code(str(body["device"])))
            elif path == "/wa/idle":
                standin.page_idle(str(body["device"]))
                self._json({"ok": True})
            elif path == "/wa/send":
                self._json(standin.page_send(body))
            elif path == "/wa/pairing":
                self._json({"code": standin.page_pairing(str(body["device"]), str(body["phone"]))})
            elif path == "/wa/action":  # message actions (issue 13.1)
                self._json(standin.page_action(body))
            elif path.startswith("/control/actions/"):
                self._json(standin.action_event(path[len("/control/actions/"):], body))
            elif path == "/wa/logout":
                standin.page_logout(str(body["device"]))
                self._json({"ok": True})
            elif path == "/wa/call":  # chats, contacts, groups (issue 13.2/3)
                self._json({"value": standin.page_call(body)})
            elif path.startswith("/control/"):
                self._control(path[len("/control/"):], body)
            else:
                self._json({"error": "not found"}, 404)
        except LookupError as error:
            self._json({"error": str(error)}, HTTPStatus.CONFLICT)
        except PermissionError as error:
            self._json({"error": str(error)}, HTTPStatus.FORBIDDEN)

    def _control(self, action: str, body: dict[str, Any]) -> None:
        standin = self.standin
        if action == "scan":
            device = standin.scan(str(body["qr"]), body.get("phone"),
                                  body.get("pushName") or "Stand-in Phone")
            self._json(device.view())
        elif action == "pair":
            self._json(standin.enter_pairing_code(str(body["code"])).view())
        elif action == "message":
            self._json(standin.incoming(str(body["phone"]), str(body["from"]), str(body["body"]),
                                        body.get("id"), body.get("quotedMessageId")))
        elif action == "media":  # -- media (issue 12)
            self._json(standin.incoming_media(str(body["phone"]), str(body["from"]), body))
        elif action == "ack":
            standin.ack(str(body["messageId"]), int(body["ack"]))
            self._json({"ok": True})
        elif action == "logout":
            self._json(standin.logout_from_phone(str(body["phone"])).view())
        elif action in ("reload", "hang"):
            devices = standin.targets(body)
            for device in devices:
                standin.push(device, {"type": action})
            self._json({"devices": [d.id for d in devices]})
        elif action == "wpp-event":  # chats, contacts, groups (issue 13): a WPP event as is
            devices = standin.targets(body)
            for device in devices:
                standin.push(device, {"type": "wpp", "name": body["name"], "value": body["value"]})
            self._json({"devices": [d.id for d in devices]})
        elif action == "config":
            with standin.lock:
                standin.config.update({k: int(v) for k, v in body.items()
                                       if k in ("qrRotateMs", "qrMaxRotations")})
            self._json(standin.config)
        else:
            self._json({"error": f"unknown control {action}"}, 404)

    def _events(self, device_id: str) -> None:
        """Server-sent events for one page: what the servers push to the device."""
        standin = self.standin
        with standin.lock:
            device = standin.devices.get(device_id)
            if device is None:
                self._json({"error": "say hello first"}, 404)
                return
            device.streams += 1
            generation = device.generation
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.close_connection = True
        try:
            self.wfile.write(b": hello\n\n")
            self.wfile.flush()
            while True:
                with standin.lock:
                    if not device.outbox and device.generation == generation:
                        standin.lock.wait(KEEPALIVE_SECONDS)
                    if device.generation != generation:
                        break  # a newer load of the page has its own stream
                    events, device.outbox = device.outbox, []
                if not events:
                    self.wfile.write(b": keepalive\n\n")
                for index, event in enumerate(events):
                    try:
                        self.wfile.write(b"data: " + json.dumps(event).encode("utf-8") + b"\n\n")
                    except OSError:
                        with standin.lock:  # the page went away: keep the rest for its next load
                            device.outbox[:0] = events[index:]
                        raise
                self.wfile.flush()
        except OSError:
            pass
        finally:
            with standin.lock:
                device.streams -= 1


def main() -> None:  # pragma: no cover - for looking at the page by hand
    import sys

    standin = StandIn(int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print(f"stand-in at {standin.url}  (control: {standin.url}control/state)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
