#!/bin/sh
# Install what the browser tests need (portal form, XMPP web client): Debian's Chromium and
# its WebDriver. Run as root.
set -eu
. "$(dirname "$0")/lib/apt-missing.sh"

install_missing browser-prereqs "
chromium          the browser the tests drive
chromium-driver   its WebDriver
"
