"""Monitoring, derived from the Plan: a node exporter on every host; on hosts with the
role `monitor`, Prometheus (scrape targets and alert rules generated from the Plan),
the blackbox exporter probing every tenant's public endpoints, and Alertmanager
routing alerts to the syndicate's e-mail and optional webhook.

Everything listens on the host's private address (the blackbox exporter on
loopback: only its Prometheus asks it); the firewall (relais/firewall.py) lets
only monitor hosts scrape and only operators reach Prometheus and Alertmanager.
The generators live in relais/monitoring; this package only puts their output
in place and reloads what changed.
"""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO

from pyinfra.api.deploy import deploy
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from relais.deploy.context import HostContext
from relais.firewall import ALERTMANAGER, NODE_EXPORTER, PROMETHEUS
from relais.monitoring import (
    alertmanager_config,
    blackbox_config,
    prometheus_config,
    render,
    rules_file,
    settings_for,
    tenant_info,
)
from relais.monitoring.metrics import PLAN_TEXTFILE, TEXTFILE_DIR
from relais.monitoring.prometheus import RULES_FILE
from relais.monitoring.targets import BLACKBOX, reach
from relais.monitoring.textfile import tls_expiry_script

NODE_EXPORTER_UNIT = "prometheus-node-exporter"
STACK_PACKAGES = ["prometheus", "prometheus-alertmanager", "prometheus-blackbox-exporter"]
CONFIG_DIR = "/etc/prometheus"


TLS_EXPIRY_UNIT = "relais-tls-expiry"
TLS_EXPIRY_SCRIPT = "/usr/local/sbin/relais-tls-expiry"
TLS_EXPIRY_SERVICE = f"""[Unit]
Description=Relais: expiry of this host's certificates, for the node exporter

[Service]
Type=oneshot
ExecStart={TLS_EXPIRY_SCRIPT}
"""
TLS_EXPIRY_TIMER = """[Unit]
Description=Relais: measure certificate expiry hourly

[Timer]
OnBootSec=1min
OnUnitActiveSec=1h

[Install]
WantedBy=timers.target
"""


def _defaults(args: list[str]) -> StringIO:
    return StringIO("# Written by Relais (deploys/monitor).\nARGS=\"" + " ".join(args) + "\"\n")


@deploy("Node exporter")
def node_exporter(ctx: HostContext) -> None:
    # Settings first: the package's first start already listens on the private address only.
    defaults = files.put(
        name="Node exporter on the private address, with the textfile collector",
        src=_defaults([f"--web.listen-address={reach(ctx.host)}:{NODE_EXPORTER}",
                       f"--collector.textfile.directory={TEXTFILE_DIR}"]),
        dest=f"/etc/default/{NODE_EXPORTER_UNIT}", mode="644")
    files.directory(name="Textfile collector directory", path=TEXTFILE_DIR, mode="755")
    files.put(name="Tenants of this host, for the backup alerts",
              src=StringIO(tenant_info(ctx.plan, ctx.host)), dest=PLAN_TEXTFILE, mode="644")
    # Without recommends: prometheus-node-exporter-collectors adds timers Relais does not use.
    apt.packages(name="Install the node exporter", packages=["prometheus-node-exporter"],
                 no_recommends=True)
    script = files.put(name="Certificate expiry job", src=StringIO(tls_expiry_script()),
                       dest=TLS_EXPIRY_SCRIPT, mode="755")
    service = files.put(name="Certificate expiry service", src=StringIO(TLS_EXPIRY_SERVICE),
                        dest=f"/etc/systemd/system/{TLS_EXPIRY_UNIT}.service", mode="644")
    timer = files.put(name="Certificate expiry timer (hourly)", src=StringIO(TLS_EXPIRY_TIMER),
                      dest=f"/etc/systemd/system/{TLS_EXPIRY_UNIT}.timer", mode="644")
    systemd.daemon_reload(name="Reload systemd for the certificate expiry units",
                          _if=any_changed(service, timer))
    systemd.service(name="Certificate expiry timer enabled", service=f"{TLS_EXPIRY_UNIT}.timer",
                    running=True, enabled=True)
    systemd.service(name="Measure certificate expiry now that the job changed",
                    service=f"{TLS_EXPIRY_UNIT}.service", restarted=True,
                    _if=any_changed(script, service))
    systemd.service(name="Restart the node exporter when its settings change", service=NODE_EXPORTER_UNIT,
                    restarted=True, _if=defaults.did_change)
    systemd.service(name="Node exporter running and enabled", service=NODE_EXPORTER_UNIT, running=True,
                    enabled=True)


@deploy("Monitoring stack")
def monitoring_stack(ctx: HostContext) -> None:
    settings = settings_for(ctx.plan)
    here = reach(ctx.host)
    password = ctx.secret(settings.smtp.password_secret) if settings.smtp.password_secret else None
    # Account and settings before the packages: their first start already runs Relais'
    # configuration (no default scrape of localhost, no listener on every address).
    server.group(name="Group of the monitoring daemons", group="prometheus", system=True)
    server.user(name="Account of the monitoring daemons", user="prometheus", group="prometheus",
                system=True, home="/var/lib/prometheus", shell="/usr/sbin/nologin", create_home=False)
    files.directory(name="Monitoring configuration directory", path=CONFIG_DIR, mode="755")

    prometheus_args = files.put(
        name="Prometheus on the private address, with the retention of the settings",
        src=_defaults([f"--config.file={CONFIG_DIR}/prometheus.yml",
                       f"--web.listen-address={here}:{PROMETHEUS}",
                       f"--storage.tsdb.retention.time={settings.retention}"]),
        dest="/etc/default/prometheus", mode="644")
    prometheus_files = [
        files.put(name="Scrape configuration from the Plan",
                  src=StringIO(render(prometheus_config(ctx.plan, ctx.host, settings))),
                  dest=f"{CONFIG_DIR}/prometheus.yml", mode="644"),
        files.put(name="Alert rules from the settings", src=StringIO(render(rules_file(settings))),
                  dest=RULES_FILE, mode="644"),
    ]
    blackbox_args = files.put(
        name="Blackbox exporter on loopback only",
        src=_defaults([f"--config.file={CONFIG_DIR}/blackbox.yml",
                       f"--web.listen-address=127.0.0.1:{BLACKBOX}"]),
        dest="/etc/default/prometheus-blackbox-exporter", mode="644")
    blackbox_file = files.put(name="Blackbox probes of the tenants' endpoints",
                              src=StringIO(render(blackbox_config(ctx.plan, settings))),
                              dest=f"{CONFIG_DIR}/blackbox.yml", mode="644")
    # No cluster: each monitor host alerts on its own (cluster.listen-address empty disables gossip).
    alertmanager_args = files.put(
        name="Alertmanager on the private address, without clustering",
        src=_defaults([f"--config.file={CONFIG_DIR}/alertmanager.yml",
                       f"--web.listen-address={here}:{ALERTMANAGER}",
                       "--cluster.listen-address="]),
        dest="/etc/default/prometheus-alertmanager", mode="644")
    # The relay's password may be in it: readable by Alertmanager's group only.
    alertmanager_file = files.put(name="Alert routing to the syndicate",
                                  src=StringIO(render(alertmanager_config(ctx.plan, settings, password))),
                                  dest=f"{CONFIG_DIR}/alertmanager.yml", mode="640", user="root",
                                  group="prometheus")

    apt.packages(name="Install Prometheus, Alertmanager and the blackbox exporter",
                 packages=STACK_PACKAGES, no_recommends=True)

    for unit, args, configs in (
        ("prometheus", prometheus_args, prometheus_files),
        ("prometheus-blackbox-exporter", blackbox_args, [blackbox_file]),
        ("prometheus-alertmanager", alertmanager_args, [alertmanager_file]),
    ):
        restart = args.did_change
        systemd.service(name=f"Restart {unit} when its settings change", service=unit, restarted=True,
                        _if=restart)
        systemd.service(name=f"Reload {unit} when its configuration changes", service=unit, reloaded=True,
                        _if=_reload_only(configs, restart))
        systemd.service(name=f"{unit} running and enabled", service=unit, running=True, enabled=True)


def _reload_only(configs: list[OperationMeta], restart: Callable[[], bool]) -> Callable[[], bool]:
    """A configuration changed and no restart follows (a restart reads it anyway)."""
    return lambda: not restart() and any(op.did_change() for op in configs)


def steps(ctx: HostContext) -> list[object]:
    functions: list[object] = [node_exporter]
    if ctx.has_role("monitor"):
        functions.append(monitoring_stack)
    return functions
