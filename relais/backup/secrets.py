"""The backup secrets of a job.

The Plan lists `<prefix>/backup_passphrase` and `<prefix>/backup_ssh_key` for every tenant
and for the shared homeserver; `relais deploy` creates them in the encrypted store.
"""

from __future__ import annotations

from typing import Literal

from relais.deploy.context import HostContext

BackupSecretKind = Literal["passphrase", "ssh-key"]


def job_secret(ctx: HostContext, ref: str, kind: BackupSecretKind) -> str:
    """A backup secret of the Plan (`relais deploy` has created every secret the Plan lists)."""
    return ctx.secret(ref)
