#!/usr/bin/env bash
# Install what the monitoring tests (tests/monitoring, marker `monitoring`) need:
#   promtool  (Debian package prometheus)               - check config/rules, rule unit tests
#   amtool    (Debian package prometheus-alertmanager)  - check the Alertmanager config
#   yamllint  (PyPI, pinned here and in requirements/test.txt) - lint the Loki/Promtail files
#
# Idempotent: apt runs only when promtool or amtool is missing, pip only when the pinned
# yamllint is not already installed. The Debian packages come with init scripts; no service
# may be left running afterwards (tests start their own Prometheus on 9090), so service
# starts are refused during the install and anything the packages started is stopped.
#
# Usage: scripts/ci-monitoring-deps.sh        (as root, or with sudo available)
# Env:   PYTHON  interpreter whose environment gets yamllint (default: the active
#                virtualenv, else .venv/bin/python of the repo if present, else python3)
set -euo pipefail

YAMLLINT_VERSION="1.38.0"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '[ci-monitoring-deps] %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

# ---------------------------------------------------------------- apt: promtool, amtool
POLICY_RC=/usr/sbin/policy-rc.d
created_policy=0

restore_policy() {
    if [ "$created_policy" -eq 1 ]; then
        $SUDO rm -f "$POLICY_RC"
        created_policy=0
    fi
}
trap restore_policy EXIT

stop_packaged_services() {
    # Stop (only) the daemons these packages may have started: by their pid files, then
    # through their init scripts. Never by process name.
    local svc pidfile pid
    for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
        for pidfile in "/run/${svc}.pid" "/run/${svc}/${svc}.pid" "/var/run/${svc}.pid"; do
            if [ -s "$pidfile" ]; then
                pid="$(cat "$pidfile")"
                if [ -n "$pid" ] && $SUDO kill -0 "$pid" 2>/dev/null; then
                    log "stopping $svc (pid $pid) started by its package"
                    $SUDO kill "$pid" 2>/dev/null || true
                fi
            fi
        done
        if [ -x "/etc/init.d/$svc" ] && command -v systemctl >/dev/null 2>&1 \
            && [ -d /run/systemd/system ]; then
            $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true
            $SUDO systemctl disable "$svc" >/dev/null 2>&1 || true
        fi
    done
}

if command -v promtool >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1; then
    log "promtool and amtool already installed"
else
    # Refuse service starts during the install (Docker images usually ship such a
    # policy-rc.d already; create a temporary one only if none exists).
    if [ ! -e "$POLICY_RC" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY_RC" >/dev/null
        $SUDO chmod 0755 "$POLICY_RC"
        created_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    APT_OPTS=(-o DPkg::Lock::Timeout=600 -y -q)
    if ! apt-cache show prometheus-alertmanager >/dev/null 2>&1; then
        log "apt-get update"
        $SUDO apt-get "${APT_OPTS[@]}" update
    fi
    log "apt-get install prometheus prometheus-alertmanager"
    if ! $SUDO apt-get "${APT_OPTS[@]}" install --no-install-recommends \
        prometheus prometheus-alertmanager; then
        log "install failed; refreshing the package lists and retrying once"
        $SUDO apt-get "${APT_OPTS[@]}" update
        $SUDO apt-get "${APT_OPTS[@]}" install --no-install-recommends \
            prometheus prometheus-alertmanager
    fi
    restore_policy
fi
stop_packaged_services

for tool in promtool amtool; do
    command -v "$tool" >/dev/null 2>&1 || { log "ERROR: $tool still missing"; exit 1; }
done
log "$(promtool --version 2>&1 | head -n1)"
log "$(amtool --version 2>&1 | head -n1)"

# ---------------------------------------------------------------- pip: yamllint
if [ -z "${PYTHON:-}" ]; then
    if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
        PYTHON="$VIRTUAL_ENV/bin/python"
    elif [ -x "$REPO_ROOT/.venv/bin/python" ]; then
        PYTHON="$REPO_ROOT/.venv/bin/python"
    else
        PYTHON="python3"
    fi
fi
installed="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("yamllint"))' \
    2>/dev/null || true)"
if [ "$installed" = "$YAMLLINT_VERSION" ]; then
    log "yamllint $YAMLLINT_VERSION already installed for $PYTHON"
else
    log "pip install yamllint==$YAMLLINT_VERSION into $PYTHON"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "yamllint==$YAMLLINT_VERSION"
fi
"$PYTHON" -m yamllint --version
