"""Certificates: the syndicate's CA trusted system-wide, and one certificate per name served.

Files: /etc/relais/tls/<name>/fullchain.pem (0644) and privkey.pem (0640, group
ssl-cert): nginx, Prosody and Synapse read them; services reload when they change.
"""

from __future__ import annotations

from io import StringIO

from pyinfra.api.deploy import deploy
from pyinfra.operations import apt, files, server

from relais.deploy.context import HostContext

TLS_DIR = "/etc/relais/tls"
CA_FILE = "/usr/local/share/ca-certificates/relais-ca.crt"


@deploy("Certificates")
def tls(ctx: HostContext) -> None:
    apt.packages(name="Install ssl-cert (its group reads private keys)", packages=["ssl-cert"])
    ca = files.put(name="Trust the syndicate's CA", src=StringIO(ctx.ca_pem()), dest=CA_FILE, mode="644")
    server.shell(name="Refresh the system's trusted CAs", commands=["update-ca-certificates"],
                 _if=ca.did_change)
    files.directory(name="Certificates directory", path=TLS_DIR, mode="755")
    for name, sans in sorted(ctx.tls_names().items()):
        chain, key = ctx.certificate(name, sans)
        files.directory(name=f"Certificate directory for {name}", path=f"{TLS_DIR}/{name}", mode="755")
        files.put(name=f"Certificate of {name}", src=StringIO(chain), dest=f"{TLS_DIR}/{name}/fullchain.pem",
                  mode="644")
        files.put(name=f"Private key of {name}", src=StringIO(key), dest=f"{TLS_DIR}/{name}/privkey.pem",
                  mode="640", user="root", group="ssl-cert")


def steps(ctx: HostContext) -> list[object]:
    return [tls]
