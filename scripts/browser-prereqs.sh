#!/bin/sh
# Install what the portal's browser test needs (tests/integration/test_portal_browser.py):
# Debian's Chromium and its WebDriver. Run as root. Idempotent: installs only what is
# missing and runs `apt-get update` only when a package is not known yet.
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "browser-prereqs: run as root (e.g. sudo $0)" >&2
    exit 1
fi

PACKAGES="chromium chromium-driver"

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    echo "browser-prereqs: everything is installed"
    exit 0
fi

echo "browser-prereqs: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086 # word splitting of the package list is intended
if ! apt-get install -y --no-install-recommends $missing; then
    apt-get update
    apt-get install -y --no-install-recommends $missing
fi
