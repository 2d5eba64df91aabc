"""Base system of every host: accounts, time, updates, logs retention, locale."""

from __future__ import annotations

from io import StringIO

from pyinfra.api.deploy import deploy
from pyinfra.context import host
from pyinfra.facts.server import Users
from pyinfra.operations import apt, files, server, systemd

from relais.deploy.context import ADMIN_GROUP, DEPLOY_USER, HostContext

BASE_PACKAGES = ["sudo", "chrony", "unattended-upgrades", "apt-listchanges", "nftables", "locales",
                 "ca-certificates", "curl", "python3"]


def _logs_days(ctx: HostContext) -> int:
    days = [t.retention.logs_days for t in ctx.tenants]
    return max(days) if days else 180


@deploy("Base system")
def base(ctx: HostContext) -> None:
    apt.packages(name="Install base packages", packages=BASE_PACKAGES, update=True, cache_time=3600,
                 no_recommends=True)

    server.hostname(name="Set the hostname", hostname=ctx.host.name)
    files.line(name="Name the host in /etc/hosts", path="/etc/hosts",
               line=r"^127\.0\.1\.1\s", replace=f"127.0.1.1\t{ctx.host.fqdn} {ctx.host.name}")

    # Time: Europe/Paris, kept by chrony (it only starts where it may set the clock).
    files.link(name="Set the timezone", path="/etc/localtime", target="/usr/share/zoneinfo/Europe/Paris")
    files.put(name="Record the timezone", src=StringIO("Europe/Paris\n"), dest="/etc/timezone", mode="644")
    files.put(name="Set the locale", src=StringIO("LANG=C.UTF-8\n"), dest="/etc/default/locale", mode="644")

    # Security updates every day, unattended.
    files.put(name="Enable unattended security upgrades",
              src=StringIO('APT::Periodic::Update-Package-Lists "1";\n'
                           'APT::Periodic::Unattended-Upgrade "1";\n'),
              dest="/etc/apt/apt.conf.d/20auto-upgrades", mode="644")

    # Log retention from the inventory's policy (CNIL: 6 to 12 months).
    days = _logs_days(ctx)
    journald = files.put(
        name="Keep the journal as long as the logs retention",
        src=StringIO(f"[Journal]\nStorage=persistent\nMaxRetentionSec={days}day\nSystemMaxUse=2G\n"),
        dest="/etc/systemd/journald.conf.d/relais.conf", mode="644", create_remote_dir=True)
    systemd.service(name="Restart journald when its retention changes", service="systemd-journald",
                    restarted=True, _if=journald.did_change)
    files.line(name="Rotate logs weekly for the logs retention", path="/etc/logrotate.conf",
               line=r"^rotate\s+\d+", replace=f"rotate {max(1, (days + 6) // 7)}")

    # Operators: the deploy account (the controller's key) and the admins of the inventory.
    server.group(name="Group of administrators", group=ADMIN_GROUP, system=True)
    server.user(name="Deploy account of the controller", user=DEPLOY_USER, shell="/bin/bash",
                home=f"/home/{DEPLOY_USER}", groups=[ADMIN_GROUP], public_keys=[ctx.controller_public_key],
                delete_keys=True)
    declared = {DEPLOY_USER}
    for admin in ctx.plan.admins:
        declared.add(admin.login)
        server.user(name=f"Administrator {admin.login}", user=admin.login, shell="/bin/bash",
                    home=f"/home/{admin.login}", groups=[ADMIN_GROUP], public_keys=admin.ssh_keys,
                    delete_keys=True, comment=admin.name)
    for login, info in sorted((host.get_fact(Users) or {}).items()):
        if ADMIN_GROUP in (info.get("groups") or []) and login not in declared:
            server.user(name=f"Remove former administrator {login}", user=login, present=False)
    files.put(name="Administrators use sudo",
              src=StringIO(f"%{ADMIN_GROUP} ALL=(ALL:ALL) NOPASSWD: ALL\n"),
              dest=f"/etc/sudoers.d/{ADMIN_GROUP}", mode="440", user="root", group="root")


def steps(ctx: HostContext) -> list[object]:
    return [base]
