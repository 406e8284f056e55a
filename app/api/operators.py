"""Operators' routes the dashboard reads: overview, audit log, infrastructure, backups, and a
webhook's recent deliveries."""
from __future__ import annotations

import os
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from app import realtime
from app.api.health import check_broker, check_database
from app.auth import current_key, require
from app.common.names import Queues, Tasks
from app.config import Config, settings
from app.extensions import db
from app.models import Session, WebhookDelivery
from app.schemas.operators import (
    AuditArgs,
    AuditPageSchema,
    BackupQueuedSchema,
    BackupSchema,
    DeliveryArgs,
    InfraStatusSchema,
    OverviewSchema,
)
from app.schemas.webhooks import DeliverySchema
from app.services import audit, backups, dispatch, overview, webhooks

stats_blp = Blueprint("stats", __name__, description="Session statistics")
audit_blp = Blueprint("audit", __name__, description="Audit log (admin)")
infra_blp = Blueprint("infra", __name__, description="Infrastructure (admin)")
deliveries_blp = Blueprint("deliveries", __name__, description="Webhook deliveries")


def _config() -> Config:
    return settings()


@stats_blp.route("/stats/overview")
class Overview(MethodView):
    @require("viewer")
    @stats_blp.response(200, OverviewSchema)
    def get(self) -> Any:
        """Session counts and the last 7 days of message volume (scope-filtered)"""
        return overview.overview(current_key().allowed_sessions)


@audit_blp.route("")
class AuditLog(MethodView):
    @require("admin")
    @audit_blp.arguments(AuditArgs, location="query")
    @audit_blp.response(200, AuditPageSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Audit log, newest first: key, session, webhook and backup changes, failed logins"""
        rows, total = audit.search(args.get("action"), args.get("since"), args.get("until"),
                                   args["limit"], args["offset"])
        return {"data": rows, "total": total}


def _storage(config: Config) -> dict[str, Any]:
    if config.storage_type != "local":
        return {"type": config.storage_type, "status": "ok", "bucket": config.storage_s3_bucket}
    path = config.storage_local_path
    if path.exists():
        writable = os.access(path, os.W_OK)
        return {"type": "local", "status": "ok" if writable else "error",
                **({} if writable else {"error": "not writable"})}
    return {"type": "local", "status": "ok", "note": "created on first use"}


@infra_blp.route("/status")
class InfraStatus(MethodView):
    @require("admin")
    @infra_blp.response(200, InfraStatusSchema)
    def get(self) -> Any:
        """Hosts and their leases, queue depths, broker/database/storage, the last backup"""
        config = _config()
        checks = {"database": check_database(), "broker": check_broker(), "storage": _storage(config)}
        body = overview.infra(config, checks)
        body["links"] = {"flower": config.flower_url or f"http://localhost:{config.flower_port}/",
                         "grafana": config.grafana_url}
        body["events"] = {"clients": realtime.clients.count(),
                          "maxClients": realtime.max_clients(config)}
        return body


@infra_blp.route("/backups")
class InfraBackups(MethodView):
    @require("admin")
    @infra_blp.response(200, BackupSchema(many=True))
    def get(self) -> Any:
        """Recorded backups, newest first"""
        return backups.list_backups(_config())

    @require("admin")
    @infra_blp.response(202, BackupQueuedSchema)
    def post(self) -> Any:
        """Take a backup now (a Celery task on the backups queue)"""
        result = dispatch.send(Tasks.MANUAL_BACKUP, [], Queues.BACKUPS)
        audit.record_now("backup.requested", target_type="task", target_id=result.id)
        return {"id": result.id, "status": "queued"}


@deliveries_blp.route("/<sid>/webhooks/<webhook_id>/deliveries")
class RecentDeliveries(MethodView):
    @require("operator")
    @deliveries_blp.arguments(DeliveryArgs, location="query")
    @deliveries_blp.response(200, DeliverySchema(many=True))
    def get(self, args: dict[str, Any], session: Session, webhook_id: str) -> Any:
        """A webhook's most recent deliveries, newest first"""
        webhook = webhooks.get(session.id, webhook_id)
        return list(db.session.scalars(select(WebhookDelivery)
                                       .where(WebhookDelivery.webhook_id == webhook.id)
                                       .order_by(WebhookDelivery.seq.desc()).limit(args["limit"])))
