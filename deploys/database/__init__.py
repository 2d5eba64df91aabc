"""PostgreSQL (Debian's 15) with one role and one database per homeserver on this host.

Passwords are set as SCRAM verifiers computed on the controller (the plain password never
reaches SQL on the host) from a one-shot SQL file (0600) removed after use; a role whose
verifier already matches the Plan's password is left alone. Databases use the C collation
Synapse requires. Clients: loopback only, scram-sha-256, each role to its own database.
"""

from __future__ import annotations

from io import StringIO

from pyinfra.api.deploy import deploy
from pyinfra.context import host
from pyinfra.operations import apt, files, server, systemd

from relais.deploy.context import HostContext
from relais.matrix import homeservers_on, scram
from relais.matrix.facts import PostgresState

PG_VERSION = "15"
PG_DIR = f"/etc/postgresql/{PG_VERSION}/main"
RUN_DIR = "/run/relais"


def render_hba(databases: list[str]) -> str:
    lines = ["# Managed by Relais (deploys/database).",
             "# TYPE  DATABASE        USER            ADDRESS         METHOD",
             "local   all             postgres                        peer"]
    for name in databases:
        # Each role reaches its own database and the scratch copy a backup drill restores
        # (relais/backup/agent.py: <database>_drill), nothing else.
        lines.append(f"host    {name},{name}_drill {name:<15} 127.0.0.1/32    scram-sha-256")
    return "\n".join(lines) + "\n"


def render_conf() -> str:
    return ("# Managed by Relais (deploys/database).\n"
            "listen_addresses = '127.0.0.1'\n"
            "password_encryption = 'scram-sha-256'\n"
            "shared_buffers = '128MB'\n"
            "max_connections = 100\n")


def sql_statements(wanted: dict[str, str], state: dict[str, dict[str, str]]) -> list[str]:
    """Statements that bring roles and databases to the Plan (role = database name)."""
    statements: list[str] = []
    for name, password in sorted(wanted.items()):
        current = state["roles"].get(name)
        if current is None and name not in state["roles"]:
            statements.append(f"CREATE ROLE {name} LOGIN PASSWORD '{scram.verifier(password)}';")
        elif not scram.matches(current, password):
            statements.append(f"ALTER ROLE {name} LOGIN PASSWORD '{scram.verifier(password)}';")
        if name not in state["databases"]:
            statements.append(f"CREATE DATABASE {name} OWNER {name} ENCODING 'UTF8' "
                              "LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;")
    return statements


@deploy("PostgreSQL for the homeservers")
def database(ctx: HostContext) -> None:
    servers = homeservers_on(ctx.plan, ctx.host.name)
    apt.packages(name="Install PostgreSQL", packages=["postgresql"], no_recommends=True)
    conf = files.put(name="PostgreSQL settings (loopback, SCRAM)", src=StringIO(render_conf()),
                     dest=f"{PG_DIR}/conf.d/relais.conf", mode="644")
    hba = files.put(name="PostgreSQL client authentication", src=StringIO(render_hba(
        sorted(hs.database for hs in servers))), dest=f"{PG_DIR}/pg_hba.conf", mode="640",
        user="postgres", group="postgres")
    systemd.service(name="PostgreSQL running", service="postgresql", running=True, enabled=True)
    systemd.service(name="Restart PostgreSQL when its settings change", service="postgresql",
                    restarted=True, _if=conf.did_change)
    systemd.service(name="Reload PostgreSQL when client authentication changes", service="postgresql",
                    reloaded=True, _if=hba.did_change)
    wanted = {hs.database: ctx.secret(hs.secret_ref("db_password")) for hs in servers}
    statements = sql_statements(wanted, host.get_fact(PostgresState))
    if statements:
        files.directory(name="Runtime directory of Relais", path=RUN_DIR, mode="700")
        sql = f"{RUN_DIR}/homeserver-databases.sql"
        files.put(name="Roles and databases to create", src=StringIO("\n".join(statements) + "\n"),
                  dest=sql, mode="600")
        server.shell(name="Create homeserver roles and databases",
                     commands=[f"runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 < {sql}; "
                               f"status=$?; rm -f {sql}; exit $status"])


def steps(ctx: HostContext) -> list[object]:
    return [database] if homeservers_on(ctx.plan, ctx.host.name) else []
