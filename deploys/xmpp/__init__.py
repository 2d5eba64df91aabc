"""The xmpp flavor: one Prosody per host, one virtual host and group-chat component per commune.

Files on the host (renderers in relais.xmpp.config):
  /etc/prosody/prosody.cfg.lua              shared settings; a change restarts Prosody (rare)
  /etc/prosody/relais-federation.cfg.lua    the federation allow-list; a change reloads
  /usr/local/lib/prosody/modules/mod_relais_*.lua  our modules (federation guard, sharing);
                                            a change restarts Prosody
  /etc/systemd/system/prosody.service.d/relais.conf  open files limit; a change restarts Prosody
  /etc/prosody/relais.d/<insee>.cfg.lua     one commune; a change reloads Prosody and (de)activates
                                            its hosts through the admin shell: other communes'
                                            sessions stay connected
  /var/lib/relais/xmpp/accounts/<jid>       root-only marker: hash of the password last set

Passwords reach Prosody only through the admin shell's standard input (`_stdin`),
never a command line, a file left behind, or an operation name.
"""

from __future__ import annotations

import secrets
from io import StringIO

from pyinfra.api.deploy import deploy
from pyinfra.context import host
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from deploys.xmpp.facts import AccountMarkers, RelaisFiles, TenantFiles
from relais.deploy.context import HostContext
from relais.plan import PlannedTenant
from relais.xmpp import accounts, converse, web
from relais.xmpp.config import (
    FEDERATION_CONFIG,
    FEDERATION_MODULE,
    LOCAL_MODULES,
    LOCAL_MODULES_DIR,
    MAIN_CONFIG,
    SHARED_MODULE,
    TENANTS_DIR,
    UNIT_DROPIN,
    host_settings,
    render_federation,
    render_main,
    render_tenant,
    render_unit_dropin,
    tenant_file,
    xmpp_tenants,
)

PACKAGES = ["prosody", "prosody-modules", "lua-unbound"]
HELPER_DIR = "/usr/local/lib/relais"
SHELL_HELPER = f"{HELPER_DIR}/prosody-shell"
LOCAL_MODULE_ROLES = {FEDERATION_MODULE: "federation allow-list",
                      SHARED_MODULE: "module code compiled once for all communes"}

# Runs admin-shell lines read on standard input; fails when one of them fails ("User exists"
# is expected when re-keying). Errors are shown with quoted text masked: a line may hold a password.
SHELL_HELPER_SCRIPT = r"""#!/bin/sh
# Managed by Relais (deploys/xmpp). Usage: prosody-shell < lines
set -u
# Prosody may have just been (re)started: wait for its admin socket.
tries=0
until printf 'server:version()\n' | prosodyctl shell --quiet 2>/dev/null | grep -q '| OK'; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then echo "Prosody's admin shell does not answer" >&2; exit 1; fi
    sleep 1
done
out=$(prosodyctl shell --quiet 2>&1)
rc=$?
errors=$(printf '%s\n' "$out" | grep -E '(^|> )! ' | grep -v 'User exists')
if [ "$rc" -ne 0 ] || [ -n "$errors" ] || printf '%s\n' "$out" | grep -q 'Unable to connect'; then
    printf '%s\n' "$out" | sed -E "s/\"[^\"]*\"/\"***\"/g; s/'[^']*'/'***'/g" >&2
    exit 1
fi
exit 0
"""

# Re-read the configuration, then bring the running hosts in line with it: activate new or
# resumed communes, deactivate suspended or removed ones (Prosody 0.12 only does this at start),
# and reload the per-host modules of communes whose file changed so that they read their new
# settings (retention, room defaults); modules keep their sessions and rooms across a reload.
SYNC_LUA = (
    '>local cm, hm, mm = require"core.configmanager", require"core.hostmanager", '
    'require"core.modulemanager"; local conf = cm.getconfig(); local changed = {CHANGED}; '
    'for h in pairs(prosody.hosts) do local c = rawget(conf, h); '
    'if h ~= "*" and (not c or c.enabled == false) then hm.deactivate(h, "service suspended") end end; '
    'for h, c in pairs(conf) do if h ~= "*" and c.enabled ~= false and not prosody.hosts[h] then '
    'assert(hm.activate(h)) elseif changed[h] and prosody.hosts[h] then '
    'for m in pairs(mm.get_modules(h)) do if not mm.is_loaded("*", m) then mm.reload(h, m) end end '
    'end end'
)


def sync_input(changed_domains: list[str]) -> str:
    table = "{" + ", ".join(f'["{d}"] = true' for d in changed_domains) + "}"
    return "config:reload()\n" + SYNC_LUA.replace("{CHANGED}", table) + "\n"


@deploy("Prosody for the xmpp communes")
def prosody(ctx: HostContext) -> None:
    settings = host_settings(ctx.plan, ctx.host)
    tenants = xmpp_tenants(ctx.plan, ctx.host)

    apt.packages(name="Install Prosody and Debian's community modules", packages=PACKAGES,
                 no_recommends=True)
    server.user(name="Prosody reads the certificates' keys (group ssl-cert)", user="prosody",
                groups=["ssl-cert"], append=True, system=True)
    files.directory(name="Helpers directory", path=HELPER_DIR, mode="755")
    files.put(name="Admin-shell helper (reads its commands on stdin)", src=StringIO(SHELL_HELPER_SCRIPT),
              dest=SHELL_HELPER, mode="755", user="root", group="root")
    files.directory(name="Communes' configuration directory", path=TENANTS_DIR, mode="750",
                    user="root", group="prosody")

    files.directory(name="Prosody's local modules directory", path=LOCAL_MODULES_DIR, mode="755")
    modules = [files.put(name=f"Prosody module of Relais (mod_{name}: {LOCAL_MODULE_ROLES[name]})",
                         src=str(ctx.templates / "xmpp" / "templates" / f"mod_{name}.lua"),
                         dest=f"{LOCAL_MODULES_DIR}/mod_{name}.lua", mode="644")
               for name in LOCAL_MODULES]
    main = files.put(name="Prosody's shared configuration", src=StringIO(render_main(settings)),
                     dest=MAIN_CONFIG, mode="640", user="root", group="prosody")
    federation = files.put(name="Federation allow-list", src=StringIO(render_federation(settings)),
                           dest=FEDERATION_CONFIG, mode="640", user="root", group="prosody")

    reloads = [federation]
    changed_domains: list[str] = []
    wanted_files = set()
    for tenant in tenants:
        path = tenant_file(tenant)
        wanted_files.add(path.rsplit("/", 1)[-1])
        put = files.put(name=f"Configuration of commune {tenant.id} ({tenant.domain}, {tenant.status})",
                        src=StringIO(render_tenant(tenant)), dest=path, mode="640", user="root",
                        group="prosody")
        reloads.append(put)
        if put.will_change and tenant.domain:
            changed_domains += [tenant.domain, f"conference.{tenant.domain}"]
    for name in host.get_fact(TenantFiles):
        if name not in wanted_files:
            reloads.append(files.file(name=f"Remove the configuration of a commune no longer here ({name})",
                                      path=f"{TENANTS_DIR}/{name}", present=False))

    dropin = files.put(name="Prosody's service: open files limit for the communes' files",
                       src=StringIO(render_unit_dropin()), dest=UNIT_DROPIN, mode="644",
                       create_remote_dir=True)
    systemd.daemon_reload(name="Reload systemd for Prosody's service drop-in", _if=dropin.did_change)

    systemd.service(name="Prosody runs and starts at boot", service="prosody", running=True, enabled=True)
    systemd.service(name="Restart Prosody when its shared configuration changes", service="prosody",
                    restarted=True, _if=any_changed(main, dropin, *modules))
    server.shell(name="Reload Prosody and (de)activate the communes whose file changed",
                 commands=[SHELL_HELPER], _stdin=sync_input(changed_domains), _if=any_changed(*reloads))

    _accounts(ctx, [t for t in tenants if t.status == "active"])


def _accounts(ctx: HostContext, active: list[PlannedTenant]) -> None:
    markers, disabled = host.get_fact(AccountMarkers)
    wanted: dict[str, str] = {}
    passwords: dict[str, str] = {}
    for tenant in active:
        for agent in tenant.agents:
            password = ctx.secret(agent.password.ref)
            passwords[agent.address] = password
            wanted[agent.address] = accounts.account_hash(agent.address, password)
    served = {t.domain for t in active if t.domain}
    changes = accounts.account_changes(wanted, markers, served)
    files.directory(name="Accounts markers directory (root only)", path=accounts.MARKER_DIR, mode="700",
                    user="root", group="root")
    if not changes:
        return
    to_set = {jid: passwords[jid] for jid in changes.set_password}
    to_disable = {jid: secrets.token_urlsafe(32) for jid in changes.disable}
    server.shell(
        name=f"Agents' accounts: create or set the password of {len(to_set)}, disable {len(to_disable)}",
        commands=[SHELL_HELPER], _stdin=accounts.shell_input(to_set, to_disable))
    for jid in changes.set_password:
        files.put(name=f"Account {jid}: record the password set", src=StringIO(wanted[jid] + "\n"),
                  dest=accounts.marker_path(jid), mode="600", user="root", group="root")
        if jid in disabled:
            files.file(name=f"Account {jid}: no longer disabled",
                       path=accounts.marker_path(jid, disabled=True), present=False)
    for jid in changes.disable:
        files.put(name=f"Account {jid}: disabled (agent removed from the inventory)",
                  src=StringIO(accounts.account_hash(jid, "") + "\n"),
                  dest=accounts.marker_path(jid, disabled=True), mode="600", user="root", group="root")
        files.file(name=f"Account {jid}: forget the password marker", path=accounts.marker_path(jid),
                   present=False)


@deploy("Web client of the xmpp communes")
def webclient(ctx: HostContext) -> None:
    settings = host_settings(ctx.plan, ctx.host)
    served = [t for t in xmpp_tenants(ctx.plan, ctx.host) if t.status == "active" and t.domain]
    version = converse.VERSION
    bundle = converse.fetch(version)

    apt.packages(name="Install nginx", packages=["nginx"], no_recommends=True)
    files.directory(name="Converse.js releases directory", path=web.CONVERSE_ROOT, mode="755")
    pushed = files.put(name=f"Converse.js {version} (pinned, integrity checked on the controller)",
                       src=str(bundle), dest=f"{web.CONVERSE_ROOT}/converse-{version}.tar", mode="644")
    server.shell(name=f"Unpack Converse.js {version}", _if=pushed.did_change, commands=[
        f"rm -rf {web.CONVERSE_ROOT}/{version} && mkdir -p {web.CONVERSE_ROOT}/{version} && "
        f"tar -xf {web.CONVERSE_ROOT}/converse-{version}.tar -C {web.CONVERSE_ROOT}/{version} "
        "--no-same-owner"])

    # Communes' domains are long (<commune>.<syndicate's domain>): nginx's default bucket (64) is too small.
    changes = [files.put(name="nginx: room for long commune domains", src=StringIO(web.NGINX_HTTP_SETTINGS),
                         dest=web.NGINX_HTTP_CONF, mode="644")]
    wanted_sites = set()
    for tenant in served:
        domain = tenant.domain or ""
        site = web.site_name(tenant)
        wanted_sites.add(site)
        files.directory(name=f"Web client directory of {domain}", path=f"{web.WEB_ROOT}/{domain}",
                        mode="755")
        files.put(name=f"Web client page of {domain}", src=StringIO(web.render_index(tenant, version)),
                  dest=f"{web.WEB_ROOT}/{domain}/index.html", mode="644")
        files.put(name=f"Web client settings of {domain}", src=StringIO(web.render_settings(tenant, version)),
                  dest=f"{web.WEB_ROOT}/{domain}/relais-converse.js", mode="644")
        changes.append(files.put(name=f"nginx site of {domain} ({site})",
                                 src=StringIO(web.render_site(tenant, settings.metrics_port)),
                                 dest=f"{web.NGINX_AVAILABLE}/{site}", mode="644"))
        changes.append(files.link(name=f"Enable the nginx site of {domain}",
                                  path=f"{web.NGINX_ENABLED}/{site}", target=f"{web.NGINX_AVAILABLE}/{site}"))
    for directory in (web.NGINX_ENABLED, web.NGINX_AVAILABLE):
        for name in host.get_fact(RelaisFiles, directory=directory):
            if name not in wanted_sites:
                remove = files.link if directory == web.NGINX_ENABLED else files.file  # enabled: symlinks
                changes.append(remove(name=f"Remove the nginx site no longer needed ({directory}/{name})",
                                      path=f"{directory}/{name}", present=False))
    systemd.service(name="nginx runs and starts at boot", service="nginx", running=True, enabled=True)
    if changes:  # always true: kept for readability of the guard below
        server.shell(name="Check and reload nginx", commands=["nginx -t -q && systemctl reload nginx"],
                     _if=any_changed(*changes))


def steps(ctx: HostContext) -> list[object]:
    if not any(s.host == ctx.host.name for s in ctx.plan.xmpp_services):
        return []
    return [prosody, webclient]
