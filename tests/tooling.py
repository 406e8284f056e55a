"""Helpers for tests that need a real tool or service.

Locally a missing tool skips the test with the install hint; in CI (CI=true) it fails
the test instead, because nothing may be skipped there for want of a dependency.
"""
from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """Skip locally, fail in CI."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def require_binary(name: str, hint: str = "") -> str:
    """Return the path of executable ``name`` or skip/fail with ``hint``."""
    path = shutil.which(name)
    if not path:
        missing(f"{name} not found{': ' + hint if hint else ''}")
    return path  # type: ignore[return-value]
