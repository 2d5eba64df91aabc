#!/bin/sh
# Install what the monitoring unit tests need on a Debian 12 controller (run as root):
# promtool, amtool and blackbox_exporter's config check, from the Debian packages
# that lab and production monitor hosts run. Idempotent: installs only what is missing, and
# never starts a daemon on the controller (a policy-rc.d forbids it during the
# install; an existing policy is respected).
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "monitoring-prereqs: run as root (e.g. sudo $0)" >&2
    exit 1
fi

# package                        what the controller uses it for
PACKAGES="
prometheus                       promtool: check config, check rules and test rules on the generated files
prometheus-alertmanager          amtool check-config on the generated alertmanager.yml
prometheus-blackbox-exporter     --config.check on the generated blackbox.yml
"

missing=""
for pkg in $(printf '%s\n' "$PACKAGES" | awk 'NF {print $1}'); do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    echo "monitoring-prereqs: everything is installed"
    exit 0
fi

echo "monitoring-prereqs: installing$missing"
export DEBIAN_FRONTEND=noninteractive

created_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=yes
fi
cleanup() { [ -n "$created_policy" ] && rm -f /usr/sbin/policy-rc.d; true; }
trap cleanup EXIT

apt-get update -qq
# No recommends: the package recommends node exporter and more, which the controller does not run.
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
echo "monitoring-prereqs: done"
