"""Issue 16: the platform tried as an attacker and a careless client would."""
from __future__ import annotations

from typing import Any

from app.extensions import db


def dispose(apps: list[Any]) -> None:
    """Close the connection pools of extra apps a test built (PostgreSQL has few slots)."""
    for made in apps:
        with made.app_context():
            db.session.remove()
            db.engine.dispose()
