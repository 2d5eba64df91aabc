"""The backup secrets of a job: read them, creating those the Plan does not list yet.

The Plan lists `tenants/<id>/backup_passphrase`; the per-job SSH key
(`<prefix>/backup_ssh_key`, kind ssh-key) and the shared homeserver's secrets are not in it
yet, so they are created here on first use, in the same encrypted store.
"""

from __future__ import annotations

from typing import Literal

from relais.deploy.context import HostContext
from relais.errors import SecretsError
from relais.plan import SecretRef
from relais.secrets import SecretStore

BackupSecretKind = Literal["passphrase", "ssh-key"]


def ensure_in_store(store: SecretStore, ref: str, kind: BackupSecretKind) -> str:
    store.ensure(SecretRef(ref=ref, kind=kind))
    return store.get(ref)


def job_secret(ctx: HostContext, ref: str, kind: BackupSecretKind) -> str:
    try:
        return ctx.secret(ref)
    except SecretsError:
        from relais.cli.context import default_inventory

        return ensure_in_store(SecretStore.open(default_inventory()), ref, kind)
