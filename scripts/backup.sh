#!/bin/sh
# Take an encrypted backup now: the database and the session profiles, to the configured
# storage, then apply the retention policy. For deployments that use cron instead of beat
# (beat already does this at BACKUP_SCHEDULE; set BACKUP_SCHEDULE=off if cron takes over):
#
#   0 2 * * *  /opt/openwa/scripts/backup.sh >>/var/log/openwa-backup.log 2>&1
#
# Runs `openwa backup` from the repository folder, so the repository's .env applies as for
# any `openwa` command. OPENWA names the command (default: .venv/bin/openwa of the
# repository, else openwa on PATH). Extra arguments go to `openwa backup`
# (e.g. --no-retention). Exit status: 0 done, 1 failed (the reason is on stderr).
set -eu

cd "$(dirname "$0")/.."
if [ -z "${OPENWA:-}" ]; then
    if [ -x .venv/bin/openwa ]; then OPENWA=.venv/bin/openwa; else OPENWA=openwa; fi
fi
echo "[$(date -u '+%Y-%m-%dT%H:%M:%SZ')] openwa backup"
exec "$OPENWA" backup "$@"
