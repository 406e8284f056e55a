#!/usr/bin/env bash
# `make test`: the whole suite, in three pytest runs that use the machine's two cores.
#
#   1. the in-process tests (no marker among integration, faults, selenium), in the background,
#      while
#   2. the tests that start real processes or Chromium (integration, selenium) wait on them;
#   3. then the fault tests (kill -9, outages, chaos) alone, because their bounds (failover,
#      drain) are about the platform, not about a neighbour's CPU.
#
# The first two share nothing: each has its own Redis database (TEST_REDIS_DB, and that + 2;
# live events carry the database in their channel), throwaway PostgreSQL databases and
# temporary folders. Arguments go to every run (a path or -k narrows all three; a run with
# nothing selected counts as passed). Exit status: non-zero if any run failed.
set -u
PY=${PY:-.venv/bin/python}
DB=${TEST_REDIS_DB:-9}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

run() {  # run NAME REDIS_DB MARKER-EXPRESSION [ARGS...]
    local name=$1 db=$2 marks=$3
    shift 3
    TEST_REDIS_DB=$db "$PY" -m pytest -p no:cacheprovider -m "$marks" "$@"
    local rc=$?
    [ "$rc" -eq 5 ] && rc=0  # nothing selected
    echo "$rc" >"$OUT/$name.rc"
    return "$rc"
}

run in-process "$DB" "not (integration or faults or selenium)" "$@" >"$OUT/in-process.log" 2>&1 &
in_process=$!
echo "[test] in-process tests running in the background (their output follows the live tests')"
echo "[test] live tests: real processes and Chromium"
run live "$((DB + 2))" "(integration or selenium) and not faults" "$@"
wait "$in_process"
echo "[test] in-process tests:"
cat "$OUT/in-process.log"
echo "[test] fault tests, alone"
run faults "$((DB + 2))" "faults" "$@"

status=0
for name in in-process live faults; do
    rc=$(cat "$OUT/$name.rc" 2>/dev/null || echo 1)
    echo "[test] $name: $([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit $rc)")"
    [ "$rc" -eq 0 ] || status=1
done
exit "$status"
