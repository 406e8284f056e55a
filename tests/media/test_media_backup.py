"""Backups include local media: a backup holds the media folder as a part of its own, and a
restore puts back the files the folder lost (content-addressed: nothing overwritten)."""
from __future__ import annotations

import shutil

from app.services import backups
from app.services.media.storage import LocalMediaStorage
from tests.backups.conftest import make_deployment
from tests.media import samples


def test_a_backup_holds_local_media_and_a_restore_brings_it_back(tmp_path):
    deployment = make_deployment(tmp_path, "sqlite", str(tmp_path / "openwa.db"),
                                 STORAGE_LOCAL_PATH=str(tmp_path / "media"))
    store = LocalMediaStorage(deployment.config.storage_local_path)
    files = [samples.png(seed=4), samples.pdf(64)]
    for data in files:
        source = tmp_path / "in"
        source.write_bytes(data)
        store.put(samples.sha(data), source, "application/octet-stream")
    with deployment.context():
        record = backups.create_backup(deployment.config)
        parts = backups.list_backups(deployment.config)[0]
    assert record.status == "completed"
    backup_dir = deployment.backups_dir / record.id
    assert (backup_dir / backups.MEDIA_PART_FILE).is_file()
    shutil.rmtree(deployment.config.storage_local_path)
    with deployment.context():
        backups.restore(deployment.config, record.id, force=True)
    for data in files:
        assert store.path(samples.sha(data)).read_bytes() == data
    assert parts is not None
