#!/bin/sh
# Restore a backup: replace the database and the session profiles with backup ID
# (`latest` for the newest). The backup is downloaded, checked and decrypted before
# anything changes. Stop the API, session hosts, workers and beat first (docs/runbooks.md);
# the restore refuses to run over live session hosts unless --force is given.
#
#   scripts/restore.sh latest
#   scripts/restore.sh 20260102T020000Z-1a2b3c --yes
#
# Same conventions as scripts/backup.sh: runs from the repository folder (its .env applies),
# OPENWA names the command, extra arguments go to `openwa restore`.
set -eu

if [ "$#" -lt 1 ]; then
    echo "usage: $0 BACKUP_ID|latest [--force] [--yes]" >&2
    echo "       list the backups with: openwa backups list" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
if [ -z "${OPENWA:-}" ]; then
    if [ -x .venv/bin/openwa ]; then OPENWA=.venv/bin/openwa; else OPENWA=openwa; fi
fi
exec "$OPENWA" restore "$@"
