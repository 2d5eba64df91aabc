"""nginx in front of the homeservers: one site per Matrix name this host serves (its A record
points here), TLS 1.2/1.3 with ANSSI ciphers on 443 and 8448, the `.well-known/matrix`
delegation, and Synapse's admin API and metrics closed from outside.

Relais owns only /etc/nginx/sites-{available,enabled}/relais-matrix-*.conf and
/etc/nginx/snippets/relais-matrix-tls.conf: other concerns (XMPP web client) add their own files.
"""

from __future__ import annotations

from io import StringIO

from pyinfra.api.deploy import deploy
from pyinfra.context import host
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from relais.deploy.context import HostContext
from relais.matrix.config import render_site, render_tls_snippet
from relais.matrix.facts import Listing
from relais.matrix.homeservers import Homeserver, address_of_name, homeservers, proxy_backend

AVAILABLE = "/etc/nginx/sites-available"
ENABLED = "/etc/nginx/sites-enabled"
SNIPPET = "/etc/nginx/snippets/relais-matrix-tls.conf"
PREFIX = "relais-matrix-"


def served_here(ctx: HostContext) -> list[Homeserver]:
    own = {a for a in (ctx.host.address, ctx.host.public_address) if a}
    return [hs for hs in homeservers(ctx.plan) if address_of_name(ctx.plan, hs.server_name) in own]


def site_file(hs: Homeserver) -> str:
    return f"{PREFIX}{hs.server_name}.conf"


@deploy("nginx for the Matrix homeservers")
def proxy(ctx: HostContext) -> None:
    served = served_here(ctx)
    changes = []
    if served:
        apt.packages(name="Install nginx", packages=["nginx"], no_recommends=True)
        changes.append(files.put(name="TLS settings of the Matrix sites", src=StringIO(render_tls_snippet()),
                                 dest=SNIPPET, mode="644"))
    wanted = set()
    for hs in served:
        name = site_file(hs)
        wanted.add(name)
        site = render_site(hs, proxy_backend(ctx.plan, hs, ctx.host.name))
        changes.append(files.put(name=f"Site {hs.server_name}", src=StringIO(site),
                                 dest=f"{AVAILABLE}/{name}", mode="644"))
        changes.append(files.link(name=f"Enable site {hs.server_name}", path=f"{ENABLED}/{name}",
                                  target=f"{AVAILABLE}/{name}"))
    for directory in (ENABLED, AVAILABLE):
        for path in host.get_fact(Listing, path=directory, prefix=PREFIX):
            if path.rsplit("/", 1)[-1] not in wanted:
                changes.append(files.file(name=f"Remove a Matrix site no longer planned: {path}",
                                          path=path, present=False))
    if not changes:
        return
    check = server.shell(name="Check nginx's configuration", commands=["nginx -t -q"],
                         _if=any_changed(*changes))
    if served:
        systemd.service(name="nginx running", service="nginx", running=True, enabled=True)
    systemd.service(name="Reload nginx when its Matrix sites change", service="nginx", reloaded=True,
                    _if=check.did_change)


def steps(ctx: HostContext) -> list[object]:
    return [proxy] if "proxy" in ctx.host.roles else []
