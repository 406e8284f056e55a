"""Archiving live profiles: files that change while read keep the archive well formed."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from app.backups import profiles
from app.backups.streams import HashingWriter


def _archive(root: Path) -> tuple[profiles.ArchiveInfo, bytes]:
    buffer = io.BytesIO()
    info = profiles.archive(root, HashingWriter(buffer), lambda _: None)  # type: ignore[arg-type]
    return info, buffer.getvalue()


@pytest.mark.parametrize("change", ["shrinks", "grows"])
def test_a_file_changing_while_read_is_recorded_and_the_tar_stays_valid(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str):
    (tmp_path / "s1").mkdir()
    busy = tmp_path / "s1" / "busy.log"
    busy.write_bytes(b"a" * 10_000)
    (tmp_path / "s1" / "z-after").write_bytes(b"still here")
    original = tarfile.TarFile.gettarinfo

    def stat_then_change(self, name=None, arcname=None, fileobj=None):  # type: ignore
        member = original(self, name, arcname, fileobj)
        if arcname == "s1/busy.log":  # the browser writes between our stat and our read
            busy.write_bytes(b"b" * (4_000 if change == "shrinks" else 20_000))
        return member

    monkeypatch.setattr(tarfile.TarFile, "gettarinfo", stat_then_change)
    info, data = _archive(tmp_path)
    assert info.changed == ["s1/busy.log"] and info.changed_count == 1
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        content = tar.extractfile("s1/busy.log").read()  # type: ignore[union-attr]
        assert tar.extractfile("s1/z-after").read() == b"still here"  # type: ignore[union-attr]
    assert len(content) == 10_000
    assert content == (b"b" * 4_000 + bytes(6_000) if change == "shrinks" else b"b" * 10_000)


def test_what_is_left_out(tmp_path: Path):
    for path in ("s/Default/IndexedDB/x.ldb", "s/Default/Cache/Cache_Data/d", "s/SingletonLock",
                 "s/Default/Local Storage/leveldb/LOCK", "s/a.lock", "_mocknet/1/inbox/m",
                 ".openwa-restore-x/s/f", "s/Default/GPUCache/g", "s/Cache"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    info, data = _archive(tmp_path)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        names = sorted(member.name for member in tar.getmembers())
    # a *file* named Cache is kept: only Chromium's cache folders are left out
    assert names == ["s", "s/Cache", "s/Default", "s/Default/IndexedDB",
                     "s/Default/IndexedDB/x.ldb", "s/Default/Local Storage",
                     "s/Default/Local Storage/leveldb"]
    assert info.sessions == ["s"] and info.files == 2


def test_extraction_refuses_paths_out_of_the_staging_folder(tmp_path: Path):
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        member = tarfile.TarInfo("../escaped")
        member.size = 1
        tar.addfile(member, io.BytesIO(b"x"))
    evil.seek(0)
    with pytest.raises(tarfile.OutsideDestinationError):
        profiles.extract(evil, tmp_path / "staging")
    assert not (tmp_path / "escaped").exists()
