"""Encrypted backups: the pieces that ``app.services.backups`` puts together.

``crypto`` encrypts a stream in authenticated chunks, ``streams`` chains hashing, gzip and
encryption, ``storage`` keeps the parts in a local directory or an S3 bucket, ``database``
dumps and restores PostgreSQL or SQLite, ``profiles`` archives the session profiles,
``manifest`` describes a backup and authenticates that description, and ``retention``
decides which backups to keep. None of them touches the Flask app or the ORM session.
"""
from __future__ import annotations


class BackupError(Exception):
    """A backup or restore cannot go on; the message says why and what to do."""


class BackupRunning(BackupError):
    """Another backup is in progress."""


class BackupNotFound(BackupError):
    """No backup with that id in the configured storage."""


class BackupCorrupt(BackupError):
    """A part does not match its checksum or fails authentication: nothing was changed."""


class WrongKey(BackupError):
    """The backup was encrypted with another ENCRYPTION_KEY."""


class LiveDeployment(BackupError):
    """Session hosts or sessions are running; a restore would pull the data from under them."""


__all__ = ["BackupCorrupt", "BackupError", "BackupNotFound", "BackupRunning", "LiveDeployment",
           "WrongKey"]
