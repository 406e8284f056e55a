"""The ``openwa`` console script.

Two things must happen before the CLI (and so Flask, Celery and prometheus_client) is
imported: a bad variable must stop start-up with one clear line, and `openwa api` must
give prometheus_client its multiprocess directory, which it reads when first imported.
That is why this module imports ``app.cli`` inside ``main``.
"""
from __future__ import annotations

import os
import shutil
import sys

import click
from dotenv import load_dotenv

from app.config import Config, ConfigError
from app.launch.guard import FOLDER_LOCK, InstanceLock, InstanceLocked


def prepare_api_metrics(config: Config) -> None:
    """gunicorn forks several workers; they share their metrics through this directory."""
    directory = (config.data_dir / "metrics" / f"api-{os.getpid()}").resolve()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def refuse_a_taken_folder(config: Config, argv: list[str]) -> None:
    """`openwa run` and a lone `openwa beat` on a folder another instance holds stop here,
    in a fraction of a second, before Flask and Celery load. (They take the lock for good
    later; this look only spares the wait.)"""
    if argv[1:2] not in (["run"], ["beat"]) or "--lock-fd" in argv:
        return
    try:
        InstanceLock.acquire(config.data_dir / FOLDER_LOCK).release()
    except InstanceLocked as error:
        click.echo(f"openwa: {error}", err=True)
        sys.exit(1)


def main() -> None:
    load_dotenv(".env")
    try:
        config = Config.from_env()
    except ConfigError as error:
        click.echo(f"openwa: configuration error: {error}", err=True)
        sys.exit(2)
    refuse_a_taken_folder(config, sys.argv)
    if sys.argv[1:2] == ["api"] and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        prepare_api_metrics(config)
    from app.cli import cli

    cli.main(prog_name="openwa")
