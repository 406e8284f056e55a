"""The session profiles under SESSION_DATA_PATH: archived as tar, restored by swapping folders.

Left out, as each engine tells (``Engine.shared_dirs`` / ``Engine.lock_files``): folders an
engine keeps beside the profiles that are not account state (the mock's ``_mocknet``), and
lock files (Chromium's ``Singleton*``, LevelDB's ``LOCK``; any ``*.lock``), which would make
a restored browser think another one holds its profile; also Chromium's caches (often most
of a profile's size, and rebuilt on demand; the login lives in IndexedDB and Local Storage,
which are kept), sockets and other special files, and our own restore staging folders.

A restore unpacks into a staging folder inside SESSION_DATA_PATH (the same file system,
so the swap is renames, also when SESSION_DATA_PATH is a mount point), with tarfile's
``data`` filter: no absolute paths, no links out of the folder, no device files.
"""
from __future__ import annotations

import logging
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from app.backups.streams import Advance, HashingReader, HashingWriter
from engines import backup_exclusions

log = logging.getLogger(__name__)

LOCK_SUFFIXES = (".lock", ".lck")
CACHE_DIRS = frozenset({"Cache", "Code Cache", "GPUCache", "GrShaderCache", "ShaderCache",
                        "DawnCache", "Crashpad"})
#: How many "changed while read" files the manifest names (it counts them all).
CHANGED_LISTED = 100
STAGING_PREFIX = ".openwa-restore-"


@dataclass
class ArchiveInfo:
    files: int = 0
    bytes: int = 0
    sessions: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    changed_count: int = 0


def _skip(path: Path, top_level: bool) -> bool:
    name = path.name
    shared_dirs, lock_files = backup_exclusions()
    if top_level:
        return name in shared_dirs or name.startswith(STAGING_PREFIX)
    return (name in lock_files or name.endswith(LOCK_SUFFIXES)
            or (name in CACHE_DIRS and path.is_dir()))


def walk(root: Path) -> Iterator[tuple[Path, bool]]:
    """(path, is_dir) of what a backup holds, parents before children, in a stable order."""
    if not root.is_dir():
        return

    def visit(folder: Path, top_level: bool) -> Iterator[tuple[Path, bool]]:
        try:
            entries = sorted(folder.iterdir())
        except FileNotFoundError:  # removed while we walk (a session being deleted)
            return
        for entry in entries:
            if _skip(entry, top_level):
                continue
            try:
                mode = entry.lstat().st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(mode):
                yield entry, True
                yield from visit(entry, False)
            elif stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                yield entry, False

    yield from visit(root, True)


def measure(root: Path) -> int:
    """Bytes of the regular files a backup would hold (for progress)."""
    total = 0
    for path, is_dir in walk(root):
        if not is_dir:
            try:
                total += path.lstat().st_size
            except FileNotFoundError:
                pass
    return total


class _Exactly:
    """Reads exactly ``size`` bytes of ``handle``: zeros if it shrank while being read,
    nothing past ``size`` if it grew, so the tar stream stays well formed (GNU tar does
    the same and says "file changed as we read it")."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._handle = handle
        self._left = size
        self.changed = False

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        data = self._handle.read(size)
        if len(data) < size:
            self.changed = True
            data += bytes(size - len(data))
        self._left -= len(data)
        return data


def archive(root: Path, out: HashingWriter, advance: Advance) -> ArchiveInfo:
    """Write the profiles under ``root`` to ``out`` as a tar stream."""
    info = ArchiveInfo()
    with tarfile.open(fileobj=out, mode="w|",  # type: ignore[call-overload]
                      format=tarfile.PAX_FORMAT) as tar:
        for path, is_dir in walk(root):
            relative = path.relative_to(root).as_posix()
            try:
                if is_dir or path.is_symlink():
                    tar.add(path, arcname=relative, recursive=False)
                    if is_dir and "/" not in relative:
                        info.sessions.append(relative)
                    continue
                with path.open("rb") as handle:
                    member = tar.gettarinfo(arcname=relative, fileobj=handle)
                    content = _Exactly(handle, member.size)
                    tar.addfile(member, content)
                    changed = content.changed or os.fstat(handle.fileno()).st_size != member.size
            except FileNotFoundError:
                continue  # removed before we got to it (a session being deleted)
            if changed:
                log.warning("backup: %s changed while it was read", relative)
                info.changed_count += 1
                if len(info.changed) < CHANGED_LISTED:
                    info.changed.append(relative)
            info.files += 1
            info.bytes += member.size
            advance(member.size)
    return info


def extract(source: HashingReader | BinaryIO, staging: Path) -> None:
    """Unpack a profiles tar stream into ``staging`` (which must not exist yet)."""
    staging.mkdir(mode=0o700)
    with tarfile.open(fileobj=source, mode="r|") as tar:
        tar.extractall(staging, filter="data")


def staging_dir(root: Path, backup_id: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return root / f"{STAGING_PREFIX}{backup_id}"


def replace(root: Path, staging: Path) -> None:
    """Make ``root`` hold exactly what ``staging`` holds (plus what backups leave out)."""
    old = root / f"{staging.name}-old"
    shutil.rmtree(old, ignore_errors=True)
    old.mkdir(mode=0o700)
    shared_dirs = backup_exclusions()[0]
    for entry in sorted(root.iterdir()):
        if entry.name in shared_dirs or entry.name.startswith(STAGING_PREFIX):
            continue
        entry.rename(old / entry.name)
    for entry in sorted(staging.iterdir()):
        entry.rename(root / entry.name)
    staging.rmdir()
    shutil.rmtree(old, ignore_errors=True)
