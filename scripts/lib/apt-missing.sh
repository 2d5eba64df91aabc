# Sourced by the *-prereqs.sh scripts: install the Debian packages of a list that are missing.
#   install_missing TAG "LIST"   LIST: one package per line, first word (the rest is a comment)
# Idempotent: installs only what is missing; `apt-get update` runs only when something is.
# Package scripts may not start a service during the install (a policy-rc.d forbids it; an
# existing policy is respected): the lab starts its daemons itself, bound to the lab bridge.
# shellcheck shell=sh

install_missing() {
    tag=$1
    if [ "$(id -u)" -ne 0 ]; then
        echo "$tag: run as root (e.g. sudo $0)" >&2
        exit 1
    fi
    missing=""
    for pkg in $(printf '%s\n' "$2" | awk 'NF {print $1}'); do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
            missing="$missing $pkg"
        fi
    done
    if [ -z "$missing" ]; then
        echo "$tag: everything is installed"
        return 0
    fi
    echo "$tag: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    created_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=yes
    fi
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; }; then
        [ -z "$created_policy" ] || rm -f /usr/sbin/policy-rc.d
        echo "$tag: installing$missing failed" >&2
        exit 1
    fi
    [ -z "$created_policy" ] || rm -f /usr/sbin/policy-rc.d
    echo "$tag: done"
}
