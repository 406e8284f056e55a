#!/bin/sh
# Entry point of the OpenWA image: the first argument names the role to run.
#
#   api | host | worker | beat | flower   ->  openwa <role> [args...]
#   migrate                               ->  openwa db upgrade [args...]
#   anything else                         ->  run as given (e.g. `sh`, `openwa shell`)
#
# exec, so the role's process receives the signals tini forwards (graceful shutdown of
# gunicorn and of Celery, which closes the session browsers).
set -eu

if [ "$#" -eq 0 ]; then
    set -- api
fi

role="$1"
case "$role" in
    api | host | worker | beat | flower)
        shift
        exec openwa "$role" "$@"
        ;;
    migrate)
        shift
        exec openwa db upgrade "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
