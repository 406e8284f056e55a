"""Media routes (issue 12): send-image, send-video, send-audio, send-document, send-sticker,
and the stored bytes of a message at ``GET .../messages/:messageId/media``."""
from __future__ import annotations

import uuid
from typing import Any

from flask import Response, jsonify, request, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api import messages as message_routes
from app.api.messages import IDEMPOTENCY_KEY_PATTERN, idempotency_key
from app.auth import current_key, require
from app.config import settings
from app.errors import ApiError, NotFound
from app.models import Session
from app.schemas.common import ErrorSchema
from app.schemas.media import (
    IncomingMediaResultSchema,
    IncomingMediaSchema,
    SendAudioSchema,
    SendMediaSchema,
    SendStickerSchema,
)
from app.schemas.messages import SendPendingSchema, SendResultSchema
from app.services import engine_calls, messages
from app.services.media import inline
from app.services.media import storage as media_storage
from app.services.media.send import send_media, spool_base64

KINDS = {"image": SendMediaSchema, "video": SendMediaSchema, "audio": SendAudioSchema,
         "document": SendMediaSchema, "sticker": SendStickerSchema}
# GET .../messages/send-image is not a message look-up (messages.ACTION_SEGMENTS).
assert all(f"send-{kind}" in message_routes.ACTION_SEGMENTS for kind in KINDS)

blp = Blueprint("media", __name__, description="Media messages")
mock_blp = Blueprint("mock_media", __name__, description="Mock engine controls (ENGINE_TYPE=mock only)")

IDEMPOTENCY_DOC = [{"in": "header", "name": "Idempotency-Key", "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200,
                               "pattern": IDEMPOTENCY_KEY_PATTERN}}]


@blp.before_request
def _room_for_inline_media() -> None:
    """Inline base64 is 4/3 of MEDIA_MAX_BYTES, plus the rest of the JSON."""
    request.max_content_length = inline.body_limit()


def _send_route(kind: str, schema: type) -> type[MethodView]:
    class SendKind(MethodView):
        STREAMS_BASE64 = True  # a long base64 is decoded to disk as it arrives (inline.py)

        @require("operator", cached_session=True)
        @blp.arguments(schema)
        @blp.response(201, SendResultSchema)
        @blp.alt_response(202, schema=SendPendingSchema,
                          description="Not confirmed within SEND_WAIT_TIMEOUT; still sent later")
        @blp.alt_response(409, schema=ErrorSchema, description="The session is not ready")
        @blp.alt_response(413, schema=ErrorSchema,
                          description="Over MEDIA_MAX_BYTES, or over 256 KiB besides base64")
        @blp.alt_response(501, schema=ErrorSchema, description="The engine cannot send this type")
        @blp.alt_response(502, schema=ErrorSchema, description="The engine or the URL failed")
        @blp.alt_response(503, schema=ErrorSchema, description="Broker or storage unavailable")
        @blp.alt_response(504, schema=ErrorSchema, description="The session host did not answer")
        @blp.doc(parameters=IDEMPOTENCY_DOC)
        def post(self, data: dict[str, Any], session: Session) -> Any:
            body, status = send_media(session, current_key(), kind, data, idempotency_key(),
                                      inline.spooled())
            if status == 202:
                response = jsonify(body)
                response.status_code = 202
                return response
            return body

    SendKind.post.__doc__ = f"Send {'an' if kind[0] in 'aeiou' else 'a'} {kind} (url or base64)"
    SendKind.__name__ = f"Send{kind.capitalize()}"
    return SendKind


for _kind, _schema in KINDS.items():
    blp.route(f"/<sid>/messages/send-{_kind}")(_send_route(_kind, _schema))


@blp.route("/<sid>/messages/<message_id:message_id>/media")
class MessageMedia(MethodView):
    @require("viewer")
    @blp.response(200, content_type="application/octet-stream",
                  description="The stored bytes, with their Content-Type")
    @blp.alt_response(503, schema=ErrorSchema, description="Media storage unavailable")
    @blp.doc(responses={"200": {"description": "The stored bytes, with their Content-Type",
                                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}})
    def get(self, session: Session, message_id: str) -> Any:
        """The stored media of a message"""
        message = messages.get_message(session, message_id)
        info = message.media or {}
        if not info.get("sha256"):
            raise NotFound(f"Message '{message_id}' has no stored media")
        try:
            stream = media_storage.open_storage(settings()).open(info["sha256"])
        except media_storage.MediaMissing:
            raise NotFound(f"The media of message '{message_id}' is no longer stored") from None
        except media_storage.StorageError as error:
            raise ApiError(f"Media storage is unavailable: {error}", status=503,
                           code="STORAGE_UNAVAILABLE") from None

        def chunks() -> Any:
            try:
                while chunk := stream.read(media_storage.CHUNK):
                    yield chunk
            finally:
                stream.close()

        mimetype = str(info.get("mimetype") or "application/octet-stream")
        response = Response(stream_with_context(chunks()), mimetype=mimetype)
        if info.get("size") is not None:
            response.headers["Content-Length"] = str(info["size"])
        filename = info.get("filename") or f"{message.id}"
        response.headers.set("Content-Disposition", "attachment", filename=str(filename))
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


@mock_blp.route("/<sid>/mock/incoming-media")
class MockIncomingMedia(MethodView):
    @require("operator")
    @mock_blp.arguments(IncomingMediaSchema)
    @mock_blp.response(200, IncomingMediaResultSchema)
    @mock_blp.alt_response(409, schema=ErrorSchema, description="The session is not ready")
    @mock_blp.alt_response(413, schema=ErrorSchema, description="Over MEDIA_MAX_BYTES")
    @mock_blp.alt_response(501, schema=ErrorSchema, description="Not the mock engine")
    @mock_blp.alt_response(502, schema=ErrorSchema, description="The engine failed")
    @mock_blp.alt_response(503, schema=ErrorSchema, description="Broker unavailable")
    @mock_blp.alt_response(504, schema=ErrorSchema, description="The session host did not answer")
    def post(self, data: dict[str, Any], session: Session) -> Any:
        """A contact sends this session a file (the mock network carries it)"""
        cfg = settings()
        folder = cfg.session_data_path / "_mocknet" / "_incoming"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / uuid.uuid4().hex
        spool_base64(data["base64"], path, cfg.media_max_bytes)
        wa_id = engine_calls.call(session, "simulate_incoming_media", [
            data["chat_id"], data["type"], str(path), data["mimetype"], data.get("filename"),
            data.get("caption")])
        return {"messageId": wa_id}
