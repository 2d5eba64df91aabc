"""Certificates: the syndicate's CA trusted system-wide, and one certificate per name served.

Files: /etc/relais/tls/<name>/fullchain.pem (0644) and privkey.pem (0640, group
ssl-cert): nginx and Prosody read them (Synapse sits behind nginx); the running ones reload
when a certificate changes, otherwise a renewed certificate is written but the old one stays
served until it expires (`relais drift` probes what is served).
"""

from __future__ import annotations

from io import StringIO

from pyinfra.api.deploy import deploy
from pyinfra.operations import apt, files, server

from relais.deploy.context import HostContext

TLS_DIR = "/etc/relais/tls"
CA_FILE = "/usr/local/share/ca-certificates/relais-ca.crt"
SERVING_UNITS = ("nginx", "prosody")
"""Services that present these certificates; reloading re-reads them (Prosody: SIGHUP)."""


@deploy("Certificates")
def tls(ctx: HostContext) -> None:
    apt.packages(name="Install ssl-cert (its group reads private keys)", packages=["ssl-cert"])
    ca = files.put(name="Trust the syndicate's CA", src=StringIO(ctx.ca_pem()), dest=CA_FILE, mode="644")
    server.shell(name="Refresh the system's trusted CAs", commands=["update-ca-certificates"],
                 _if=ca.did_change)
    files.directory(name="Certificates directory", path=TLS_DIR, mode="755")
    written = []
    for name, sans in sorted(ctx.tls_names().items()):
        chain, key = ctx.certificate(name, sans)
        files.directory(name=f"Certificate directory for {name}", path=f"{TLS_DIR}/{name}", mode="755")
        written.append(files.put(name=f"Certificate of {name}", src=StringIO(chain),
                                 dest=f"{TLS_DIR}/{name}/fullchain.pem", mode="644"))
        written.append(files.put(name=f"Private key of {name}", src=StringIO(key),
                                 dest=f"{TLS_DIR}/{name}/privkey.pem", mode="640", user="root",
                                 group="ssl-cert"))
    # On a first deploy the services come later (their own concerns) and read the files as
    # they start; afterwards, only running ones reload.
    units = " ".join(SERVING_UNITS)
    server.shell(name="Reload the services that serve the certificates",
                 commands=[f"for unit in {units}; do if systemctl is-active -q $unit; then "
                           f"systemctl reload $unit; fi; done"],
                 _if=lambda: any(op.did_change() for op in written))


def steps(ctx: HostContext) -> list[object]:
    return [tls]
