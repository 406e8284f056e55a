"""Imports go one way: engines <- app <- tasks <- the launchers (app/launch, issue 15 item 7).

The launchers start Celery processes, so they import ``tasks``; they live in ``app/launch``
and only the command line (``app/cli.py``, ``app/entry.py``, ``app/__main__.py``) reaches
them. Everything else under ``app/`` (the API and its services) never imports ``tasks``.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"
LAUNCHERS = APP / "launch"
COMMAND_LINE = {APP / "cli.py", APP / "entry.py", APP / "__main__.py"}


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _is(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_nothing_under_app_but_the_launchers_imports_tasks():
    offenders = sorted(
        str(path.relative_to(ROOT)) for path in APP.rglob("*.py")
        if LAUNCHERS not in path.parents
        and any(_is(name, "tasks") for name in imported_modules(path)))
    assert not offenders, f"only app/launch may import tasks: {offenders}"


def test_the_launchers_import_tasks_directly_not_inside_functions():
    roles = ast.parse((LAUNCHERS / "roles.py").read_text())
    top_level = {node.module for node in roles.body
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert "tasks" in top_level
    nested = [node for node in ast.walk(roles)
              if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
              for inner in ast.walk(node)
              if isinstance(inner, ast.ImportFrom) and inner.module and _is(inner.module, "tasks")]
    assert not nested, "no import of tasks inside a function to dodge a cycle"


def test_only_the_command_line_reaches_the_launchers():
    offenders = []
    for path in APP.rglob("*.py"):
        if LAUNCHERS in path.parents or path in COMMAND_LINE:
            continue
        reached = {name for name in imported_modules(path)
                   if _is(name, "app.launch.roles") or _is(name, "app.launch.platform")
                   or _is(name, "app.cli")}
        if reached:
            offenders.append(f"{path.relative_to(ROOT)}: {sorted(reached)}")
    assert not offenders, offenders


def test_the_api_runs_without_loading_tasks(tmp_path):
    """Building the Flask app and serving a request loads no module of ``tasks``."""
    code = (
        "import sys\n"
        "from app import create_app\n"
        "app = create_app()\n"
        "app.test_client().get('/api/health')\n"
        "print(sorted(m for m in sys.modules if m == 'tasks' or m.startswith('tasks.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "DATA_PATH": str(tmp_path / "data")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
