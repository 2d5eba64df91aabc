"""Provisioning: the Pulumi stacks of ``stacks/`` fed with the Plan.

- :mod:`.offline`: the resource graph a stack would create, under Pulumi's mock runtime,
  checked by the CrossGuard pack (no CLI, no network);
- :mod:`.automation`: preview, up, refresh, destroy through the Automation API with a
  local file backend and the CrossGuard pack;
- :mod:`.outputs`: the addresses of provisioned hosts, written where the planner reads them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from relais.model import SSH_KEY_RE
from relais.provision.errors import ProvisionError, PulumiMissing
from relais.provision.outputs import ProvisionedHost, read_provisioned, write_provisioned
from relais.provision.paths import default_state_dir, ensure_importable

if TYPE_CHECKING:
    from stacks.program import StackOptions

__all__ = [
    "ProvisionError",
    "ProvisionedHost",
    "PulumiMissing",
    "controller_keys",
    "default_state_dir",
    "project_main",
    "read_provisioned",
    "stack_options",
    "write_provisioned",
]

KEY_ENV = "RELAIS_CONTROLLER_KEY"


def _lab_controller_key() -> Path:
    from relais.lab.paths import LabPaths

    return LabPaths.default().ssh_key.with_suffix(".pub")


def controller_keys(path: Path | None = None, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The public key `relais deploy` connects with: ``--ssh-key``, else ``$RELAIS_CONTROLLER_KEY``,
    else the lab controller's key (so one key reaches lab and cloud hosts); () if none."""
    env = os.environ if environ is None else environ
    explicit = path or (Path(env[KEY_ENV]) if env.get(KEY_ENV) else None)
    candidate = explicit or _lab_controller_key()
    try:
        text = candidate.expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        if explicit is None:
            return ()
        raise ProvisionError(f"cannot read the controller key {candidate}: {exc}",
                             hint="pass the public key (.pub) of the controller's SSH key") from None
    keys = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    bad = [k for k in keys if not SSH_KEY_RE.match(k)]
    if not keys or bad:
        raise ProvisionError(f"{candidate} is not an OpenSSH public key",
                             hint="pass the .pub file (a line such as 'ssh-ed25519 AAAA... name'), "
                             "never the private key")
    return keys


def stack_options(kind: str, *, ssh_key: Path | None = None, dns_provider: str | None = None,
                  review_lab: bool = False, environ: Mapping[str, str] | None = None) -> StackOptions:
    """Stack options from the command line and the ``RELAIS_*`` environment."""
    ensure_importable()
    from stacks.program import StackOptions, StackSpecError

    values: dict[str, object] = {"controller_keys": controller_keys(ssh_key, environ),
                                 "review_lab": review_lab}
    if dns_provider:
        values["dns_provider"] = dns_provider
    try:
        return StackOptions.from_env(kind, environ, **values)
    except StackSpecError as error:
        raise ProvisionError(str(error), hint=error.hint) from None


def project_main(kind: str) -> None:
    """Body of ``stacks/<kind>/__main__.py``, for running a project with the `pulumi` CLI alone:
    plans ``$RELAIS_INVENTORY`` and creates the stack's resources."""
    from relais.cli.context import default_inventory
    from relais.planner import plan_directory
    from relais.provision.offline import describe_stack
    from stacks.program import run

    inventory = Path(os.environ["RELAIS_INVENTORY"]) if os.environ.get("RELAIS_INVENTORY") \
        else default_inventory()
    plan = plan_directory(inventory).plan
    options = stack_options(kind)
    run(describe_stack(plan, options), options)
