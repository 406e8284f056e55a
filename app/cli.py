"""The ``openwa`` command: Flask's CLI group with the platform's roles and key tools."""
from __future__ import annotations

import sys
from datetime import datetime

import click
from flask import current_app
from flask.cli import FlaskGroup, routes_command, shell_command

from app import create_app, runner
from app.config import Config
from app.models import ROLES
from app.services import api_keys, webhooks


def _create_app() -> object:
    return create_app()


cli = FlaskGroup(create_app=_create_app, add_default_commands=False, load_dotenv=True,
                 help="OpenWA: a self-hosted WhatsApp HTTP API gateway on Celery.")
cli.add_command(shell_command)
cli.add_command(routes_command)


def _config() -> Config:
    return current_app.config["OPENWA"]  # type: ignore[no-any-return]


@cli.command("run")
def run_command() -> None:
    """Everything on one machine: API, session host, worker, beat and Flower."""
    platform = runner.Platform(_config())
    sys.exit(platform.run(current_app._get_current_object()))  # type: ignore[attr-defined]


@cli.command("api")
def api_command() -> None:
    """The REST API under gunicorn (PORT, API_WORKERS, API_THREADS)."""
    with current_app.app_context():
        api_keys.bootstrap_admin(_config())
    runner.run_api(current_app._get_current_object())  # type: ignore[attr-defined]


@cli.command("host")
def host_command() -> None:
    """A session host: Celery worker, solo pool, owns up to SESSIONS_PER_HOST engines."""
    runner.run_host(current_app._get_current_object())  # type: ignore[attr-defined]


@cli.command("worker")
def worker_command() -> None:
    """A Celery worker for the default, webhooks, media and backups queues."""
    runner.run_worker(current_app._get_current_object())  # type: ignore[attr-defined]


@cli.command("beat")
def beat_command() -> None:
    """Celery beat: health probe, sweeps, backups, pruning."""
    runner.run_beat(current_app._get_current_object())  # type: ignore[attr-defined]


@cli.command("flower")
def flower_command() -> None:
    """Flower, the operators' view of workers, queues and tasks (FLOWER_BASIC_AUTH)."""
    runner.run_flower(current_app._get_current_object())  # type: ignore[attr-defined]


@cli.group("keys")
def keys_group() -> None:
    """Manage API keys from the shell."""


@keys_group.command("create")
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(ROLES), default="operator", show_default=True)
@click.option("--session", "sessions", multiple=True, help="Allowed session (repeatable).")
@click.option("--ip", "ips", multiple=True, help="Allowed IP or CIDR (repeatable).")
@click.option("--expires", type=click.DateTime(), default=None, help="Expiry (UTC).")
def keys_create(name: str, role: str, sessions: tuple[str, ...], ips: tuple[str, ...],
                expires: datetime | None) -> None:
    """Create a key and print it (shown once)."""
    key, raw = api_keys.create({"name": name, "role": role, "allowed_sessions": list(sessions),
                                "allowed_ips": list(ips), "expires_at": expires}, _config())
    click.echo(f"{key.id}\t{key.role}\t{raw}")


@keys_group.command("list")
def keys_list() -> None:
    """List keys (never the secret)."""
    for key in api_keys.list_keys():
        state = "active" if key.is_active and not api_keys.expired(key) else "inactive"
        click.echo(f"{key.id}\t{key.key_prefix}…\t{key.role}\t{state}\t{key.name}")


@keys_group.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key (not the last active admin key)."""
    api_keys.revoke(api_keys.get(key_id))
    click.echo(f"revoked {key_id}")


@cli.group("secrets")
def secrets_group() -> None:
    """Secrets at rest (webhook secrets and headers)."""


@secrets_group.command("reencrypt")
def secrets_reencrypt() -> None:
    """Rewrite every stored secret under the current ENCRYPTION_KEY.

    Rotation: set the new ENCRYPTION_KEY and the old one in ENCRYPTION_KEY_PREVIOUS on every
    process, run this once, then drop ENCRYPTION_KEY_PREVIOUS.
    """
    click.echo(f"re-encrypted {webhooks.reencrypt_all()} secret(s)")
