"""Dumping and restoring the database.

PostgreSQL: ``pg_dump --format=custom`` (uncompressed: the part is gzipped once, after)
streams straight into the part, so the plaintext dump never touches the disk; it runs in
one repeatable-read transaction, so it is a consistent snapshot however much is written
meanwhile. A restore feeds ``pg_restore``'s SQL to ``psql --single-transaction`` after a
preamble that drops every table, view, sequence and type of the schema: either the whole
database becomes the backup's, or (on any error) nothing changes.

SQLite: the online backup API copies the live file in one step, a consistent snapshot
(in WAL mode writers go on meanwhile). A restore copies the verified snapshot back into
the live file with the same API, under SQLite's own locking, so connections that other
processes hold see either the old or the new database, never a half-written file.
"""
from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sqlalchemy.engine import make_url

from app.backups import BackupCorrupt, BackupError
from app.backups.streams import COPY_BUFFER, HashingWriter
from app.config import Config

PG_FORMAT, SQLITE_FORMAT = "pg_dump-custom", "sqlite"

# Runs before the dump's SQL, in the same transaction: the restored database has exactly
# the backup's objects, also when the current schema has tables the backup does not
# (a restore after a migration). lock_timeout: a restore that cannot get its locks
# fails, and rolls back, instead of waiting forever behind a live process.
_PG_PREAMBLE = """\
SET lock_timeout = '60s';
DO $openwa$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
           AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
  LOOP
    EXECUTE format('DROP %s IF EXISTS %I CASCADE',
                   CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                  WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, r.relname);
  END LOOP;
  FOR r IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = current_schema() AND c.relkind = 'S'
  LOOP
    EXECUTE format('DROP SEQUENCE IF EXISTS %I CASCADE', r.relname);
  END LOOP;
  FOR r IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = current_schema() AND t.typtype IN ('e', 'd', 'r')
  LOOP
    EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', r.typname);
  END LOOP;
  -- Our trigger functions (message_counts); not those an extension owns.
  FOR r IN SELECT p.oid::regprocedure AS signature FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = current_schema() AND p.prokind = 'f'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
  LOOP
    EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', r.signature);
  END LOOP;
END
$openwa$;
"""


@dataclass(frozen=True)
class DumpInfo:
    """What the manifest records about a database dump."""

    format: str
    server_version: str
    tool: str


# -- PostgreSQL ----------------------------------------------------------------
def pg_tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise BackupError(f"{name} not found: install the PostgreSQL client tools "
                          f"(Debian: postgresql-client) of the server's major version")
    return path


def _libpq(config: Config) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password, and the environment that carries it.

    The password stays out of the command line, where ``ps`` would show it.
    """
    assert config.database_url
    url = make_url(config.database_url).set(drivername="postgresql")
    env = {"PGCONNECT_TIMEOUT": "10"}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    if config.database_ssl and "sslmode" not in url.query:
        env["PGSSLMODE"] = "require"
    return url.set(password=None).render_as_string(hide_password=False), env


def _run(cmd: list[str], env: dict[str, str], what: str) -> str:
    try:
        result = subprocess.run(cmd, env={**_base_env(), **env}, capture_output=True, text=True,
                                timeout=600, check=False)
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what} timed out") from None
    if result.returncode != 0:
        raise BackupError(f"{what} failed (exit {result.returncode}): "
                          f"{result.stderr.strip()[-2000:]}")
    return result.stdout


def _base_env() -> dict[str, str]:
    # The process's own environment (PATH, HOME for ~/.pgpass, PGSSL* settings, …).
    return dict(os.environ)


def _major(version: str) -> int:
    match = re.search(r"(\d+)(?:\.\d+)?", version)
    if not match:
        raise BackupError(f"cannot read a PostgreSQL version in {version!r}")
    return int(match.group(1))


def pg_versions(config: Config) -> tuple[str, str]:
    """(server version, pg_dump version); BackupError when pg_dump is older than the server."""
    uri, env = _libpq(config)
    server = _run([pg_tool("psql"), "-X", "-A", "-t", "-c", "SHOW server_version", uri], env,
                  "psql (asking the server's version)").strip()
    tool = _run([pg_tool("pg_dump"), "--version"], {}, "pg_dump --version").strip()
    if _major(tool.split(")", 1)[-1]) < _major(server):
        raise BackupError(f"{tool} cannot dump PostgreSQL {server}: install the client tools "
                          f"of version {_major(server)} (Debian: postgresql-client-"
                          f"{_major(server)})")
    return server, tool


def dump_postgres(config: Config, out: HashingWriter) -> DumpInfo:
    server, tool = pg_versions(config)
    uri, env = _libpq(config)
    cmd = [pg_tool("pg_dump"), "--format=custom", "--compress=0", "--no-owner",
           "--no-privileges", "--dbname", uri]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors,
                                   env={**_base_env(), **env})
        assert process.stdout is not None
        try:
            while data := process.stdout.read(COPY_BUFFER):
                out.write(data)
        finally:
            process.stdout.close()
            code = process.wait()
        if code != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()[-2000:]
            raise BackupError(f"pg_dump failed (exit {code}): {message}")
    return DumpInfo(PG_FORMAT, server, tool)


def verify_postgres(path: Path) -> None:
    """pg_restore reads the whole table of contents: a sound archive, before anything changes."""
    try:
        _run([pg_tool("pg_restore"), "--list", str(path)], {}, "pg_restore --list")
    except BackupError as error:
        raise BackupCorrupt(f"the database dump is not a valid pg_dump archive: {error}") from None


def restore_postgres(config: Config, path: Path) -> None:
    """Replace the whole schema with the dump's, in one transaction."""
    uri, env = _libpq(config)
    full_env = {**_base_env(), **env}
    with tempfile.TemporaryDirectory(prefix="openwa-restore-") as folder:
        preamble = Path(folder) / "preamble.sql"
        preamble.write_text(_PG_PREAMBLE)
        errors_path = Path(folder) / "errors.txt"
        with errors_path.open("wb") as errors:
            script = subprocess.Popen(
                [pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--file=-", str(path)],
                stdout=subprocess.PIPE, stderr=errors, env=full_env)
            assert script.stdout is not None
            psql = subprocess.run(
                [pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
                 "-f", str(preamble), "-f", "-", uri],
                stdin=script.stdout, stdout=subprocess.DEVNULL, stderr=errors, env=full_env,
                check=False)
            script.stdout.close()
            script_code = script.wait()
        if psql.returncode != 0 or script_code != 0:
            message = errors_path.read_text(errors="replace").strip()[-2000:]
            raise BackupError(f"the database restore failed and was rolled back, nothing "
                              f"changed (pg_restore exit {script_code}, psql exit "
                              f"{psql.returncode}): {message}")


# -- SQLite ----------------------------------------------------------------------
def dump_sqlite(config: Config, scratch: Path, out: HashingWriter) -> DumpInfo:
    source_path = config.database_sqlite_path
    if not source_path.is_file():
        raise BackupError(f"the SQLite database {source_path} does not exist")
    snapshot = scratch / "snapshot.sqlite"
    source = sqlite3.connect(source_path, timeout=60)
    target = sqlite3.connect(snapshot)
    try:
        # One step (pages=-1): a single read transaction, so the copy is one consistent
        # state; in steps, every write by another process would restart the copy.
        source.backup(target)
    finally:
        target.close()
        source.close()
    try:
        with snapshot.open("rb") as handle:
            while data := handle.read(COPY_BUFFER):
                out.write(data)
    finally:
        snapshot.unlink()
    return DumpInfo(SQLITE_FORMAT, sqlite3.sqlite_version, f"sqlite3 {sqlite3.sqlite_version}")


def verify_sqlite(path: Path) -> None:
    try:
        with closing(sqlite3.connect(path)) as check:
            result = check.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.DatabaseError as error:
        raise BackupCorrupt(f"the database snapshot is not a SQLite database: {error}") from None
    if result != "ok":
        raise BackupCorrupt(f"the database snapshot fails SQLite's integrity check: {result}")


def restore_sqlite(config: Config, path: Path) -> None:
    target_path = config.database_sqlite_path
    target_path.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(path)
    target = sqlite3.connect(target_path, timeout=60)
    try:
        target.execute("PRAGMA busy_timeout=60000")
        source.backup(target)
    except sqlite3.Error as error:
        raise BackupError(f"the SQLite restore into {target_path} failed: {error}") from None
    finally:
        target.close()
        source.close()


def alembic_revision_of_sqlite(path: Path) -> str | None:
    with closing(sqlite3.connect(path)) as check:
        try:
            row = check.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError:
            return None
    return row[0] if row else None


@dataclass(frozen=True)
class DatabaseStrategy:
    """Everything a backup and a restore do differently per DATABASE_TYPE, in one object."""

    backend: str  # DATABASE_TYPE
    label: str  # for people
    part_file: str  # the encrypted part in the backup
    plain_file: str  # the decrypted dump, in the restore's scratch folder
    dump: Callable[[Config, Path, HashingWriter], DumpInfo]  # (config, scratch, out)
    verify: Callable[[Path], None]
    restore: Callable[[Config, Path], None]
    size: Callable[[Config], int | None]  # what a progress bar can expect, if known


def _sqlite_size(config: Config) -> int | None:
    path = config.database_sqlite_path
    return path.stat().st_size if path.exists() else None


STRATEGIES = {
    "postgres": DatabaseStrategy(
        "postgres", "PostgreSQL", "database.dump.gz.enc", "database.dump",
        lambda config, scratch, out: dump_postgres(config, out), verify_postgres,
        restore_postgres, lambda config: None),
    "sqlite": DatabaseStrategy(
        "sqlite", "SQLite", "database.sqlite.gz.enc", "database.sqlite", dump_sqlite,
        verify_sqlite, restore_sqlite, _sqlite_size),
}


def strategy(config: Config) -> DatabaseStrategy:
    return STRATEGIES[config.database_type]
