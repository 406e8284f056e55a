"""API-key management (admin) and key validation (any key)."""
from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from app.auth import current_key, require
from app.config import settings
from app.schemas.api_keys import (
    ApiKeyCreatedSchema,
    ApiKeyCreateSchema,
    ApiKeySchema,
    ApiKeyUpdateSchema,
    ValidateResultSchema,
)
from app.services import api_keys

blp = Blueprint("api_keys", __name__, description="API keys and roles")


def _with_secret(key: Any, raw: str) -> Any:
    key.api_key = raw  # a plain attribute, never stored: the response shows it once
    return key


@blp.route("/api-keys")
class ApiKeys(MethodView):
    @require("admin")
    @blp.response(200, ApiKeySchema(many=True))
    def get(self) -> Any:
        """List API keys (never the key or its hash)"""
        return api_keys.list_keys()

    @require("admin")
    @blp.arguments(ApiKeyCreateSchema)
    @blp.response(201, ApiKeyCreatedSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create an API key; the plaintext is returned once"""
        key, raw = api_keys.create(data, settings())
        return _with_secret(key, raw)


@blp.route("/api-keys/<key_id>")
class ApiKeyById(MethodView):
    @require("admin")
    @blp.response(200, ApiKeySchema)
    def get(self, key_id: str) -> Any:
        """Get one API key"""
        return api_keys.get(key_id)

    @require("admin")
    @blp.arguments(ApiKeyUpdateSchema)
    @blp.response(200, ApiKeySchema)
    def put(self, data: dict[str, Any], key_id: str) -> Any:
        """Update name, role, scopes, expiry or isActive"""
        return api_keys.update_key(api_keys.get(key_id), data)

    @require("admin")
    @blp.response(204)
    def delete(self, key_id: str) -> None:
        """Delete an API key (not the last active admin key)"""
        api_keys.delete(api_keys.get(key_id))


@blp.route("/api-keys/<key_id>/revoke")
class RevokeApiKey(MethodView):
    @require("admin")
    @blp.response(200, ApiKeySchema)
    def post(self, key_id: str) -> Any:
        """Revoke an API key: it answers 401 from now on"""
        return api_keys.revoke(api_keys.get(key_id))


@blp.route("/api-keys/<key_id>/rotate")
class RotateApiKey(MethodView):
    @require("admin")
    @blp.response(201, ApiKeyCreatedSchema)
    def post(self, key_id: str) -> Any:
        """Rotate the secret: same id and scopes, the old secret answers 401 at once"""
        key, raw = api_keys.rotate(api_keys.get(key_id), settings())
        return _with_secret(key, raw)


@blp.route("/validate")
class Validate(MethodView):
    @require("viewer")
    @blp.response(200, ValidateResultSchema)
    def post(self) -> Any:
        """Check the presented key"""
        key = current_key()
        return {"valid": True, "role": key.role,
                "scoped": bool(key.allowed_sessions or key.allowed_ips or key.allowed_chats)}
