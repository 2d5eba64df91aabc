#!/bin/sh
# Install what `relais lab` needs on a Debian 12 controller (run as root).
# Idempotent: installs only what is missing, runs `apt-get update` at most once,
# and never starts a service (the lab starts dnsmasq and apt-cacher-ng itself,
# bound to the lab bridge only).
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "lab-prereqs: run as root (e.g. sudo $0)" >&2
    exit 1
fi

# package           what the lab uses it for
PACKAGES="
systemd-container   systemd-nspawn: one machine per lab host
debootstrap         builds the Debian 12 base image
dnsmasq-base        DNS resolver on the lab bridge (binary only, no system service)
apt-cacher-ng       Debian package proxy on the lab bridge
nftables            forward rule that keeps the lab isolated
iproute2            bridge, addresses, route checks
openssh-client      ssh, ssh-keygen, ssh-keyscan
openssh-server      sshd -t validates the hardened sshd_config in unit tests (not started)
bind9-dnsutils      dig, for checking the lab resolver
"

missing=""
for pkg in $(printf '%s\n' "$PACKAGES" | awk 'NF {print $1}'); do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    echo "lab-prereqs: everything is installed"
    exit 0
fi

echo "lab-prereqs: installing$missing"
export DEBIAN_FRONTEND=noninteractive

# Keep package scripts from starting services (apt-cacher-ng would listen on
# every interface): the lab starts them itself. Respect an existing policy.
created_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=yes
fi
cleanup() { [ -n "$created_policy" ] && rm -f /usr/sbin/policy-rc.d; true; }
trap cleanup EXIT

apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
echo "lab-prereqs: done"
