"""Schemathesis hooks of `make fuzz`: rules the OpenAPI document cannot state.

JSON Schema has no "a date in the future": a generated ``expiresAt`` in the past is
moved to the same moment a hundred years on, so a schema-valid key is not refused for
having expired already (a past ``expiresAt`` is a 400, which tests/api prove).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import schemathesis


def _future(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    if moment <= datetime.now(timezone.utc):
        try:
            return moment.replace(year=datetime.now(timezone.utc).year + 100).isoformat()
        except ValueError:  # 29 February
            return moment.replace(year=datetime.now(timezone.utc).year + 100, day=28).isoformat()
    return value


@schemathesis.hook
def map_body(ctx: Any, body: Any) -> Any:
    if isinstance(body, dict) and "expiresAt" in body:
        body = {**body, "expiresAt": _future(body["expiresAt"])}
    return body


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    """The same for cases of every phase (map_body does not see the coverage phase's)."""
    if isinstance(case.body, dict) and "expiresAt" in case.body:
        case.body = {**case.body, "expiresAt": _future(case.body["expiresAt"])}
