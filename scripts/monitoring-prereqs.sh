#!/bin/sh
# Install what the monitoring unit tests need on a Debian 12 controller (run as root):
# the check tools of the Debian packages that lab and production monitor hosts run.
# No recommends (node exporter and more, which the controller does not run); no daemon started.
set -eu
. "$(dirname "$0")/lib/apt-missing.sh"

# package                        what the controller uses it for
install_missing monitoring-prereqs "
prometheus                       promtool: check config, check rules and test rules on the generated files
prometheus-alertmanager          amtool check-config on the generated alertmanager.yml
prometheus-blackbox-exporter     --config.check on the generated blackbox.yml
"
