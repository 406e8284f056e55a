"""What keeps one deployment's processes honest on one machine.

- Children die with their parent, however it dies (``kill -9`` included): Linux sends them a
  parent-death signal (``prctl(PR_SET_PDEATHSIG)``), armed by :mod:`app.launch.pdeath` before
  the child program starts, or directly in a forked Python child (gunicorn's workers).
- One instance per data folder: an exclusive ``flock`` on a file in it. The kernel drops the
  lock when the last process holding the open file is gone, so it never goes stale the way a
  pid file does, and the file names the holder for whoever is refused.
"""
from __future__ import annotations

import ctypes
import fcntl
import json
import os
import signal
import sys
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1
_SHIM = Path(__file__).with_name("pdeath.py")
LINUX = sys.platform.startswith("linux")
# In DATA_PATH: held by `openwa run` (and its children) or by a lone `openwa beat`.
FOLDER_LOCK = "openwa.lock"


def set_parent_death_signal(signum: int) -> None:
    """This process gets ``signum`` when its parent (the thread that forked it) exits."""
    if not LINUX:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def dies_with_me(argv: list[str], signum: int = signal.SIGTERM) -> list[str]:
    """``argv`` wrapped so that the program gets ``signum`` when this process dies.

    Start it from the main thread: Linux sends the signal when the forking *thread* exits.
    """
    if not LINUX:
        return argv
    return [sys.executable, "-I", "-S", str(_SHIM), str(int(signum)), str(os.getpid()), "--",
            *argv]


# -- one instance per folder ---------------------------------------------------
class InstanceLocked(RuntimeError):
    """Another process holds the folder; ``str()`` is the one line to show."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holders(path: Path) -> list[int]:
    """The processes that have ``path`` open (Linux: /proc/*/fd), for the refusal line."""
    pids = []
    target = str(path.resolve())
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) == target for fd in fd_dir.iterdir()):
                pids.append(int(fd_dir.parent.name))
        except OSError:
            continue
    return sorted(pids)


class InstanceLock:
    """An exclusive ``flock`` on ``path``, held through the open file descriptor ``fd``.

    Children that receive ``fd`` (``pass_fds``) share the lock: the folder stays taken until
    the last of them is gone.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    @classmethod
    def acquire(cls, path: Path, **holder: object) -> InstanceLock:
        """Take the lock at once or raise :class:`InstanceLocked` naming who holds it."""
        path = path.resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                described = cls._describe(path, os.pread(fd, 4096, 0))
            finally:
                os.close(fd)
            raise InstanceLocked(described) from None
        lock = cls(path, fd)
        lock.describe_as(**holder)
        return lock

    @classmethod
    def inherit(cls, path: Path, fd: int) -> InstanceLock:
        """The lock a parent passed down as ``fd``; refuses a descriptor of another file."""
        path = path.resolve()
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except OSError:
            same = False
        if not same:
            raise InstanceLocked(f"descriptor {fd} is not the lock {path}")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours already (same open file)
        return cls(path, fd)

    def describe_as(self, **holder: object) -> None:
        """Record who holds the folder (what a refused process prints)."""
        holder.setdefault("pid", os.getpid())
        holder.setdefault("since", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
        data = (json.dumps(holder) + "\n").encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    @staticmethod
    def _describe(path: Path, raw: bytes) -> str:
        try:
            holder = json.loads(raw.decode() or "{}")
        except ValueError:
            holder = {}
        what = str(holder.pop("what", "another OpenWA process"))
        pid = int(holder.pop("pid", 0) or 0)
        details = [f"pid {pid}" if pid else "pid unknown"]
        details += [f"{key} {value}" for key, value in holder.items()]
        line = f"{path.parent} is in use by {what} ({', '.join(details)})"
        if pid and not _alive(pid):
            others = [p for p in _holders(path) if p != os.getpid()]
            line += (f"; it has exited but processes it started still run: "
                     f"{', '.join(map(str, others))}" if others else "; it has exited")
        return line + "; stop it first or use another DATA_PATH"

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
