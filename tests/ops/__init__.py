"""Checks of the packaging and CI files (docker/, .github/) with their real tools.

``scripts/ci-deps.sh`` installs the tools. Helpers shared by the modules of this package
live here: where the repository and its files are, and how a tool is found when it is not
on PATH (a virtualenv that is not activated, /usr/sbin for a non-root user, .tools/).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.tooling import missing, require_binary

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "docker"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
ENTRYPOINT = DOCKER_DIR / "entrypoint.sh"
COMPOSE_DEV = DOCKER_DIR / "docker-compose.yml"
COMPOSE_PROD = DOCKER_DIR / "docker-compose.prod.yml"
NGINX_CONF = DOCKER_DIR / "nginx.conf"
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
TOOLS_BIN = REPO / ".tools" / "node_modules" / ".bin"

INSTALL_HINT = "run scripts/ci-deps.sh"


def find_tool(name: str, *extra_dirs: Path) -> str:
    """Path of executable ``name``: on PATH, beside this interpreter, or in ``extra_dirs``.

    Skips the test locally when it is missing and fails it in CI (tests.tooling).
    """
    if shutil.which(name):
        return require_binary(name)
    for folder in (Path(sys.executable).parent, *extra_dirs):
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return require_binary(name, INSTALL_HINT)


def run(
    cmd: list[str], *, timeout: float = 120, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``, capturing text output; never raises on a non-zero exit."""
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    """Both streams of ``result``, for assertion messages."""
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


__all__ = [
    "COMPOSE_DEV",
    "COMPOSE_PROD",
    "DOCKERFILE",
    "DOCKER_DIR",
    "ENTRYPOINT",
    "NGINX_CONF",
    "REPO",
    "TOOLS_BIN",
    "WORKFLOW",
    "find_tool",
    "missing",
    "output",
    "run",
]
