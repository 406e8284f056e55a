#!/usr/bin/env bash
# Install what the selenium engine's tests (marker `selenium`) need:
#   chromium, chromium-driver  (Debian packages; always a matching pair)
#   npm                         (Debian package) - to fetch the wa-js bundle
#   @wppconnect/wa-js           (npm, pinned in the Makefile) - `make wajs` into .tools/wa-js/
#
# Idempotent and quick when everything is there: apt runs only if a binary is missing, npm
# only if the pinned bundle is not in .tools/. Nothing here downloads a browser or a driver
# of its own: Chromium and chromedriver come from Debian only.
#
# Usage: scripts/ci-selenium-deps.sh        (as root, or with sudo available)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf '[ci-selenium-deps] %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

apt_packages=()
have chromium || apt_packages+=(chromium)
have chromedriver || apt_packages+=(chromium-driver)
have npm || apt_packages+=(npm)

if [ "${#apt_packages[@]}" -eq 0 ]; then
    log "chromium, chromium-driver and npm already installed"
else
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
fi
for tool in chromium chromedriver npm; do
    have "$tool" || { log "ERROR: $tool still missing"; exit 1; }
done
log "$(chromedriver --version | cut -d' ' -f1-2)"

make -C "$REPO_ROOT" --no-print-directory wajs
