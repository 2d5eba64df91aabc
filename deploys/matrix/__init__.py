"""Synapse homeservers of this host: one venv from the controller's wheelhouse, then per
homeserver a Unix user, its configuration, a hardened systemd unit with the Plan's memory limit,
and its accounts (and, on the shared homeserver, one space per commune).

A suspended dedicated tenant's unit is stopped and disabled; its data stays. Agents of a
suspended commune on the shared homeserver are locked (they cannot log in; data stays).
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

from pyinfra.api.deploy import deploy
from pyinfra.context import host
from pyinfra.facts.files import Directory
from pyinfra.operations import apt, files, pip, server, systemd
from pyinfra.operations.util import any_changed

from relais import wheelhouse
from relais.deploy.context import HostContext
from relais.matrix import SYNAPSE_VENV, Homeserver, homeservers_on
from relais.matrix.accounts import desired_accounts, state_is_current
from relais.matrix.config import HomeserverSecrets, render_homeserver, render_log_config, render_unit
from relais.matrix.facts import JsonFile

SYNAPSE_ROOT = "/opt/relais/synapse"
HOSTSYNC = "/usr/local/lib/relais/synapse_hostsync.py"
HOSTSYNC_SOURCE = Path(__file__).resolve().parents[2] / "relais" / "matrix" / "hostsync.py"
RUN_DIR = "/run/relais"


def _install(ctx: HostContext) -> object:
    apt.packages(name="Install venv support and libpq", packages=["python3-venv", "libpq5"],
                 no_recommends=True)
    house = wheelhouse.ensure()
    files.directory(name="Synapse directory", path=SYNAPSE_ROOT, mode="755")
    files.put(name=f"Push the wheelhouse {house.key}", src=str(house.archive),
              dest=f"{SYNAPSE_ROOT}/{house.archive.name}", mode="644")
    wheels = f"{SYNAPSE_ROOT}/{house.key}"
    if not host.get_fact(Directory, path=wheels):
        server.shell(name=f"Unpack the wheelhouse {house.key}",
                     commands=[f"rm -rf {wheels}.tmp && mkdir -p {wheels}.tmp && "
                               f"tar -xf {SYNAPSE_ROOT}/{house.archive.name} -C {wheels}.tmp && "
                               f"mv {wheels}.tmp {wheels}"])
    pip.venv(name="Synapse virtualenv", path=SYNAPSE_VENV, python="python3")
    installed = pip.packages(name="Install Synapse from the wheelhouse", packages=house.requirements(),
                             virtualenv=SYNAPSE_VENV, extra_install_args=f"--no-index --find-links {wheels}")
    files.put(name="Account and space helper", src=str(HOSTSYNC_SOURCE), dest=HOSTSYNC, mode="755")
    return installed


def _homeserver(ctx: HostContext, hs: Homeserver, installed: object) -> None:
    label = f"{hs.server_name}"
    server.group(name=f"Group of {label}", group=hs.unix_user, system=True)
    server.user(name=f"Account of {label}", user=hs.unix_user, group=hs.unix_user, system=True,
                home=hs.data_dir, shell="/usr/sbin/nologin", ensure_home=False)
    files.directory(name=f"Configuration directory of {label}", path=hs.config_dir, mode="750",
                    user="root", group=hs.unix_user)
    files.directory(name=f"Bootstrap configuration directory of {label}", path=f"{hs.config_dir}/conf.d",
                    mode="750", user="root", group=hs.unix_user)
    files.directory(name=f"Data of {label}", path=hs.data_dir, mode="750", user=hs.unix_user,
                    group=hs.unix_user)
    files.directory(name=f"Media store of {label}", path=f"{hs.data_dir}/media", mode="750",
                    user=hs.unix_user, group=hs.unix_user)
    secrets = HomeserverSecrets(db_password=ctx.secret(hs.secret_ref("db_password")),
                                macaroon_secret=ctx.secret(hs.secret_ref("macaroon_secret")),
                                form_secret=ctx.secret(hs.secret_ref("form_secret")))
    config = files.put(name=f"Configuration of {label}", src=StringIO(render_homeserver(
        ctx.plan, hs, secrets, lab=ctx.lab, metrics_address=ctx.host.address)),
        dest=f"{hs.config_dir}/homeserver.yaml", mode="640", user="root", group=hs.unix_user)
    logs = files.put(name=f"Logging of {label}", src=StringIO(render_log_config()),
                     dest=f"{hs.config_dir}/log.yaml", mode="644")
    signing_key = ctx.secret(hs.secret_ref("signing_key")) + "\n"
    key = files.put(name=f"Signing key of {label}", src=StringIO(signing_key),
                    dest=f"{hs.config_dir}/signing.key", mode="640", user="root", group=hs.unix_user)
    unit = files.put(name=f"Unit {hs.unit}", src=StringIO(render_unit(hs)),
                     dest=f"/etc/systemd/system/{hs.unit}", mode="644")
    systemd.daemon_reload(name=f"Reload systemd for {hs.unit}", _if=unit.did_change)
    if not hs.running:
        systemd.service(name=f"Stop {label} (tenant suspended, data kept)", service=hs.unit,
                        running=False, enabled=False)
        return
    systemd.service(name=f"Run {label}", service=hs.unit, running=True, enabled=True)
    systemd.service(name=f"Restart {label} when its configuration changes", service=hs.unit,
                    restarted=True, _if=any_changed(config, logs, key, unit, installed))  # type: ignore[arg-type]
    state = host.get_fact(JsonFile, path=f"{hs.data_dir}/accounts.json")
    request = desired_accounts(hs, ctx.secret, state)
    if state_is_current(state, request):
        return
    files.directory(name="Runtime directory of Relais", path=RUN_DIR, mode="700")
    path = f"{RUN_DIR}/synapse-{hs.id}-accounts.json"
    files.put(name=f"Accounts to converge on {label}", src=StringIO(request.to_json()), dest=path, mode="600")
    server.shell(name=f"Converge accounts{' and spaces' if hs.shared else ''} of {label}",
                 commands=[f"{SYNAPSE_VENV}/bin/python {HOSTSYNC} {path}"])


@deploy("Synapse homeservers")
def matrix(ctx: HostContext) -> None:
    installed = _install(ctx)
    for hs in homeservers_on(ctx.plan, ctx.host.name):
        _homeserver(ctx, hs, installed)


def steps(ctx: HostContext) -> list[object]:
    return [matrix] if homeservers_on(ctx.plan, ctx.host.name) else []
