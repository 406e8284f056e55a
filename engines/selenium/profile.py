"""A session's browser profile on disk: our lock on it, and Chromium's own ``Singleton*`` lock.

Layout under the session's profile directory::

    <profile_dir>/.openwa-profile.lock   our lock (flock), held while an engine drives it
    <profile_dir>/chromium/              Chromium's --user-data-dir (the WhatsApp link)

Chromium locks its user-data-dir with ``SingletonLock`` (a symlink to ``<hostname>-<pid>``),
``SingletonSocket`` and ``SingletonCookie``. A lock left by a killed browser on this host is
taken over by Chromium itself; one left under another host name (another container sharing
the storage) makes Chromium refuse to start, so it is removed here — but only while we hold
our own lock, which proves that no engine of ours, on any host, uses the profile.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import socket
from pathlib import Path
from typing import IO

import psutil

log = logging.getLogger(__name__)

LOCK_NAME = ".openwa-profile.lock"
USER_DATA_NAME = "chromium"
SINGLETON_FILES = ("SingletonLock", "SingletonSocket", "SingletonCookie")


class ProfileBusy(Exception):
    """Another engine (in this process or another) holds the profile."""


class ProfileLock:
    """An exclusive ``flock`` on the profile's lock file, held until :meth:`release`."""

    def __init__(self, profile_dir: Path) -> None:
        self.path = Path(profile_dir) / LOCK_NAME
        self._handle: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self) -> None:
        if self._handle is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+b")  # noqa: SIM115 (kept open: the lock lives with it)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.close()
            if error.errno in (errno.EAGAIN, errno.EACCES):
                raise ProfileBusy(
                    f"profile {self.path.parent} is in use by another engine") from None
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(f"{socket.gethostname()} {os.getpid()}\n".encode())
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()


def user_data_dir(profile_dir: Path) -> Path:
    return Path(profile_dir) / USER_DATA_NAME


def singleton_owner(data_dir: Path) -> tuple[str, int] | None:
    """``(hostname, pid)`` from Chromium's ``SingletonLock``, if there is one."""
    try:
        target = os.readlink(data_dir / "SingletonLock")
    except OSError:
        return None
    host, _, pid = target.rpartition("-")
    try:
        return host, int(pid)
    except ValueError:
        return host, -1


def browsers_using(data_dir: Path) -> list[psutil.Process]:
    """Live Chromium processes on this machine started with ``--user-data-dir=data_dir``."""
    wanted = f"--user-data-dir={Path(data_dir).resolve()}"
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            cmdline = process.info["cmdline"] or []
        except (psutil.Error, KeyError):
            continue
        if wanted in cmdline:
            found.append(process)
    return found


def kill_processes(processes: list[psutil.Process]) -> int:
    """SIGKILL each process and wait briefly for it; answers how many were alive."""
    alive = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
            alive.append(process)
    psutil.wait_procs(alive, timeout=3)
    return len(alive)


def prepare(profile_dir: Path) -> Path:
    """Make the user-data-dir startable; call with our :class:`ProfileLock` held.

    Kills browsers of this machine still running on it (we hold the lock, so they are
    orphans of a dead engine), and removes a ``Singleton*`` lock of another host.
    """
    data_dir = user_data_dir(profile_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    orphans = browsers_using(data_dir)
    if orphans:
        log.warning("killing %d orphaned browser process(es) on %s", len(orphans), data_dir)
        kill_processes(orphans)
    owner = singleton_owner(data_dir)
    if owner is not None and owner[0] != socket.gethostname():
        log.warning("removing the Chromium lock of host %s (pid %s) from %s", owner[0], owner[1],
                    data_dir)
        for name in SINGLETON_FILES:
            with contextlib.suppress(FileNotFoundError):
                (data_dir / name).unlink()
    return data_dir


def wipe(profile_dir: Path) -> None:
    """Remove the browser profile (and so the WhatsApp link); keep our lock file."""
    shutil.rmtree(user_data_dir(profile_dir), ignore_errors=True)
