"""The ``openwa`` command: Flask's CLI group with the platform's roles and key tools."""
from __future__ import annotations

import functools
import json
import sys
import threading
import time
from datetime import datetime
from typing import Any, Callable, TextIO

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, routes_command, shell_command

from app import create_app
from app.backups import BackupError
from app.backups.progress import human_bytes
from app.config import ConfigError, settings
from app.extensions import current_flask_app
from app.launch import roles
from app.launch.guard import InstanceLocked
from app.launch.platform import Platform
from app.models import ROLES
from app.services import api_keys, backups, key_auth, webhooks


def _create_app() -> Flask:
    return create_app()


cli = FlaskGroup(create_app=_create_app, add_default_commands=False, load_dotenv=True,
                 help="OpenWA: a self-hosted WhatsApp HTTP API gateway on Celery.")
cli.add_command(shell_command)
cli.add_command(routes_command)


def _role(launch: Callable[..., None]) -> Callable[..., None]:
    """A role refused at start (bad setting, folder in use) says so in one line, exit 2/1."""
    @functools.wraps(launch)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            launch(*args, **kwargs)
        except ConfigError as error:
            click.echo(f"openwa: configuration error: {error}", err=True)
            sys.exit(2)
        except InstanceLocked as error:
            click.echo(f"openwa: {error}", err=True)
            sys.exit(1)

    return wrapper


@cli.command("run")
def run_command() -> None:
    """Everything on one machine: API, session host, worker, beat and Flower, supervised
    (a crashed role is restarted), none outliving it, one per DATA_PATH."""
    sys.exit(Platform(settings()).run(current_flask_app()))


@cli.command("api")
@_role
def api_command() -> None:
    """The REST API under gunicorn (PORT, API_WORKERS, API_THREADS)."""
    with current_app.app_context():
        api_keys.bootstrap_admin(settings())
    roles.run_api(current_flask_app())


@cli.command("host")
@_role
def host_command() -> None:
    """A session host: Celery worker, solo pool, owns up to SESSIONS_PER_HOST engines."""
    roles.run_host(current_flask_app())


@cli.command("worker")
@_role
def worker_command() -> None:
    """A Celery worker for the default, webhooks, media and backups queues."""
    roles.run_worker(current_flask_app())


@cli.command("beat")
@click.option("--lock-fd", type=int, default=None, hidden=True,
              help="The data folder's lock, held by the `openwa run` that started this beat.")
@_role
def beat_command(lock_fd: int | None) -> None:
    """Celery beat: health probe, sweeps, backups, pruning (one per DATA_PATH)."""
    roles.run_beat(current_flask_app(), lock_fd)


@cli.command("flower")
@_role
def flower_command() -> None:
    """Flower, the operators' view of workers, queues and tasks (FLOWER_BASIC_AUTH)."""
    roles.run_flower(current_flask_app())


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
                                "allowed_ips": list(ips), "expires_at": expires}, settings())
    click.echo(f"{key.id}\t{key.role}\t{raw}")


@keys_group.command("list")
def keys_list() -> None:
    """List keys (never the secret)."""
    for key in api_keys.list_keys():
        state = "active" if key.is_active and not key_auth.expired(key) else "inactive"
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


class TerminalProgress:
    """Stages of a long operation on stderr: a live line on a terminal, else one line each."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._live = self._stream.isatty()
        self._lock = threading.Lock()
        self._stage, self._done = "", 0
        self._total: int | None = None
        self._started = self._shown = 0.0

    def begin(self, stage: str, total: int | None = None) -> None:
        with self._lock:
            self._stage, self._total, self._done = stage, total, 0
            self._started = time.monotonic()
            self._show(final=False)

    def advance(self, amount: int) -> None:
        with self._lock:
            self._done += amount
            if self._live and time.monotonic() - self._shown >= 0.1:
                self._show(final=False)

    def end(self) -> None:
        with self._lock:
            self._show(final=True)

    def _show(self, final: bool) -> None:
        if not (self._live or final):
            return
        self._shown = time.monotonic()
        done = human_bytes(self._done)
        if final:
            line = f"  {self._stage:<18} {done:>10}  {self._shown - self._started:6.1f} s"
        elif self._total:
            share = min(self._done / self._total, 1.0)
            bar = "#" * int(share * 24)
            line = (f"  {self._stage:<18} [{bar:<24}] {share:4.0%}  {done} of "
                    f"{human_bytes(self._total)}")
        else:
            line = f"  {self._stage:<18} {done:>10}  …"
        if self._live:
            self._stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()


@cli.command("backup")
@click.option("--no-retention", is_flag=True,
              help="Keep every backup this time (do not apply the retention policy).")
def backup_command(no_retention: bool) -> None:
    """Take an encrypted backup of the database and the session profiles now."""
    config = settings()
    try:
        record = backups.create_backup(config, "manual", TerminalProgress())
        click.echo(f"backup {record.id} completed: {human_bytes(record.size_bytes or 0)} in "
                   f"{record.location}")
        if not no_retention:
            deleted = backups.apply_retention(config)
            if deleted:
                click.echo(f"retention: deleted {len(deleted)} old backup(s): "
                           f"{', '.join(deleted)}")
    except BackupError as error:
        raise click.ClickException(str(error)) from None


@cli.group("backups")
def backups_group() -> None:
    """Backups in the configured storage (BACKUP_STORAGE, BACKUP_PATH or BACKUP_S3_*)."""


@backups_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document, for scripts.")
def backups_list(as_json: bool) -> None:
    """List the backups, newest first, with their status."""
    try:
        records = backups.list_backups(settings())
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps([{
            "id": r.id, "status": r.status, "trigger": r.trigger,
            "startedAt": r.started_at.isoformat(),
            "finishedAt": r.finished_at.isoformat() if r.finished_at else None,
            "sizeBytes": r.size_bytes, "databaseBackend": r.database_backend,
            "alembicRevision": r.alembic_revision, "location": r.location, "error": r.error,
        } for r in records], indent=2))
        return
    if not records:
        click.echo("no backups")
        return
    click.echo(f"{'ID':<24} {'STATUS':<10} {'TRIGGER':<10} {'STARTED (UTC)':<20} {'SIZE':>9}  "
               f"REVISION")
    for r in records:
        size = human_bytes(r.size_bytes) if r.size_bytes is not None else "-"
        line = (f"{r.id:<24} {r.status:<10} {r.trigger:<10} "
                f"{r.started_at:%Y-%m-%d %H:%M:%S}  {size:>9}  {r.alembic_revision or '-'}")
        if r.error:
            line += f"  ({r.error})"
        click.echo(line)


@cli.command("restore")
@click.argument("backup_id")
@click.option("--force", is_flag=True,
              help="Restore even while session hosts or sessions are running.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation on a terminal.")
def restore_command(backup_id: str, force: bool, yes: bool) -> None:
    """Replace the database and the session profiles with backup BACKUP_ID (or `latest`).

    The backup is fetched, checked and decrypted before anything is changed.
    """
    config = settings()
    if not yes and sys.stdin.isatty():
        click.confirm(f"Replace the database and the session profiles with backup "
                      f"{backup_id}?", abort=True)
    try:
        report = backups.restore(config, backup_id, force=force, progress=TerminalProgress())
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"restored backup {report.backup_id} (made {report.created_at}): the database "
               f"and {report.sessions} session profile(s), {report.files} file(s), in "
               f"{report.seconds:.1f} s")
    if report.revision and report.head and report.revision != report.head:
        click.echo(f"the database is at schema revision {report.revision}; this version of "
                   f"OpenWA expects {report.head}: run `openwa db upgrade` before starting it")
