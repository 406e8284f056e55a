"""Health routes: public liveness/readiness, and a detailed view for any valid key."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from flask import jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import func, select, text

from app.auth import require
from app.config import settings
from app.extensions import db
from app.models import Session
from app.resilience import draining
from app.services import dispatch, hosts
from app.version import VERSION

blp = Blueprint("health", __name__, description="Health checks")
STARTED = time.monotonic()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def check_database() -> dict[str, Any]:
    started = time.perf_counter()
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        return {"status": "ok", "latencyMs": round((time.perf_counter() - started) * 1000, 1)}
    except Exception as error:  # any driver error means "down" here
        db.session.rollback()
        return {"status": "error", "error": type(error).__name__}


def check_broker() -> dict[str, Any]:
    started = time.perf_counter()
    try:
        dispatch.ping_broker()
        return {"status": "ok", "latencyMs": round((time.perf_counter() - started) * 1000, 1)}
    except Exception as error:
        return {"status": "error", "error": type(error).__name__}


@blp.route("")
class Health(MethodView):
    @blp.doc(security=[])
    def get(self) -> Any:
        """Basic health: the process answers"""
        return jsonify({"status": "ok", "timestamp": _now()})


@blp.route("/live")
class Live(MethodView):
    @blp.doc(security=[])
    def get(self) -> Any:
        """Liveness"""
        return jsonify({"status": "ok"})


@blp.route("/ready")
class Ready(MethodView):
    @blp.doc(security=[])
    def get(self) -> Any:
        """Readiness: 200 only when the database and the broker answer"""
        details = {"database": check_database(), "broker": check_broker()}
        if draining():
            details["process"] = {"status": "draining"}
        ok = all(item["status"] == "ok" for item in details.values())
        response = jsonify({"status": "ok" if ok else "error", "details": details})
        response.status_code = 200 if ok else 503
        return response


@blp.route("/detailed")
class Detailed(MethodView):
    @require("viewer")
    def get(self) -> Any:
        """Detailed health: database, broker, sessions by status, hosts"""
        config = settings()
        by_status = dict(db.session.execute(
            select(Session.status, func.count()).group_by(Session.status)).all())
        live = hosts.live_hosts(config)
        database, broker = check_database(), check_broker()
        checks = {
            "database": database,
            "redis": broker,
            "broker": broker,
            "sessions": {"total": sum(by_status.values()), "byStatus": by_status,
                         "max": config.max_sessions},
            "workers": {"hosts": [{"name": h.name, "capacity": h.capacity, "held": h.held}
                                  for h in live],
                        "liveHosts": len(live), "freeCapacity": sum(max(h.free, 0) for h in live)},
        }
        ok = database["status"] == "ok" and broker["status"] == "ok"
        return jsonify({"status": "ok" if ok else "degraded", "version": VERSION,
                        "uptime": round(time.monotonic() - STARTED, 1), "timestamp": _now(),
                        "checks": checks})
