#!/bin/sh
# Install what `relais lab` and `relais deploy` need on a Debian 12 controller (run as root).
# Never starts a service: the lab starts dnsmasq and apt-cacher-ng itself, bound to the lab bridge.
set -eu
. "$(dirname "$0")/lib/apt-missing.sh"

# package           what the controller uses it for
install_missing lab-prereqs "
systemd-container   systemd-nspawn: one machine per lab host
debootstrap         builds the Debian 12 base image
dnsmasq-base        DNS resolver on the lab bridge (binary only, no system service)
apt-cacher-ng       Debian package proxy on the lab bridge
nftables            forward rule that keeps the lab isolated
iproute2            bridge, addresses, route checks
openssh-client      ssh, ssh-keygen, ssh-keyscan
openssh-server      sshd -t validates the hardened sshd_config in unit tests (not started)
bind9-dnsutils      dig, for checking the lab resolver
gcc                 builds psycopg2 against Debian's libpq for Synapse's wheelhouse (relais/wheelhouse.py)
python3-dev         the same
libpq-dev           the same (pg_config)
libnss3-tools       certutil: the XMPP web client test trusts the lab CA in Chromium
"
