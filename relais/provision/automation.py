"""`relais provision preview|up|refresh|destroy` through Pulumi's Automation API.

The program is the stack's own (inline: :func:`stacks.program.run` on the Plan), the
state lives in a local file backend (a directory the syndicate chooses), and every
preview and update runs the CrossGuard pack of ``policies/crossguard``. Credentials are
read by the providers from their usual environment variables, never from the repository.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from relais.plan import Plan
from relais.provision.errors import ProvisionError, PulumiMissing
from relais.provision.offline import describe_stack
from relais.provision.outputs import (
    ProvisionedHost,
    hosts_from_outputs,
    remove_provisioned,
    write_provisioned,
)
from relais.provision.paths import POLICY_PACK_DIR, backend_url, ensure_importable

if TYPE_CHECKING:
    from stacks.program import StackOptions

Operation = Literal["preview", "up", "refresh", "destroy"]

CREDENTIALS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    # Any one of the alternatives (each a set of variables that must all be present).
    "openstack": (("OS_CLOUD",), ("OS_AUTH_URL",)),
    "scaleway": (("SCW_ACCESS_KEY", "SCW_SECRET_KEY", "SCW_DEFAULT_PROJECT_ID"),),
}
PASSPHRASE = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")


def pulumi_cli(environ: Mapping[str, str] | None = None) -> str:
    """The `pulumi` executable (``RELAIS_PULUMI`` or on PATH), or a clear error up front."""
    env = os.environ if environ is None else environ
    explicit = env.get("RELAIS_PULUMI")
    if explicit:
        if Path(explicit).is_file() and os.access(explicit, os.X_OK):
            return explicit
        raise PulumiMissing()
    found = shutil.which("pulumi", path=env.get("PATH"))
    if found is None:
        raise PulumiMissing()
    return found


def missing_credentials(provider: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """The provider's usual variables that are missing ([] when one alternative is complete)."""
    env = os.environ if environ is None else environ
    alternatives = CREDENTIALS.get(provider, ())
    if not alternatives or any(all(env.get(v) for v in alt) for alt in alternatives):
        return []
    return [v for v in alternatives[-1] if not env.get(v)]


@dataclass
class ProvisionRun:
    operation: Operation
    stack: str
    summary: dict[str, int] = field(default_factory=dict)
    hosts: dict[str, ProvisionedHost] = field(default_factory=dict)
    written: Path | None = None


def run_operation(
    plan: Plan,
    options: StackOptions,
    operation: Operation,
    *,
    inventory: Path,
    state_dir: Path,
    on_output: Callable[[str], None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ProvisionRun:
    """Preview, update, refresh or destroy one stack; after up/refresh, write the hosts'
    addresses where the planner reads them; after destroy, remove them."""
    env = os.environ if environ is None else environ
    cli = pulumi_cli(env)
    spec = describe_stack(plan, options)
    if spec.review:
        raise ProvisionError(f"no host has provider {options.kind}: nothing to {operation}",
                             hint="set `provider:` of the hosts to provision in hosting.yaml")
    missing = missing_credentials(spec.provider, env)
    if missing:
        raise ProvisionError(f"{spec.provider} credentials are not in the environment: {', '.join(missing)}",
                             hint="export them (e.g. source your provider's RC file); Relais never reads "
                             "credentials from the repository")
    if not any(env.get(v) for v in PASSPHRASE):
        raise ProvisionError("the state's secrets need a passphrase: PULUMI_CONFIG_PASSPHRASE is not set",
                             hint="export PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) "
                             "from your secret store")
    if operation in ("preview", "up") and spec.kind != "dns" and not options.controller_keys:
        raise ProvisionError("no controller SSH key to install on the new hosts",
                             hint="pass --ssh-key FILE.pub or set RELAIS_CONTROLLER_KEY")
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProvisionError(f"cannot create the state directory {state_dir}: {exc.strerror}",
                             hint="choose another with --state DIR or RELAIS_PULUMI_STATE") from None

    ensure_importable()
    from pulumi import automation as auto

    from stacks.program import run

    workspace = auto.LocalWorkspaceOptions(
        project_settings=auto.ProjectSettings(
            name=spec.project, runtime="python", backend=auto.ProjectBackend(url=backend_url(state_dir))),
        pulumi_command=auto.PulumiCommand(root=str(Path(cli).resolve().parent.parent)),
        env_vars={"PULUMI_SKIP_UPDATE_CHECK": "true"},
    )
    packs = [str(POLICY_PACK_DIR)]
    try:
        stack = auto.create_or_select_stack(stack_name=stack_name(plan, options), project_name=spec.project,
                                            program=lambda: run(spec, options), opts=workspace)
        result = ProvisionRun(operation=operation, stack=options.kind)
        if operation == "preview":
            preview = stack.preview(on_output=on_output, policy_packs=packs, color="never")
            result.summary = _counts(preview.change_summary)
            return result
        if operation == "up":
            up = stack.up(on_output=on_output, policy_packs=packs, color="never")
            result.summary = _counts(up.summary.resource_changes)
            outputs: Mapping[str, Any] = {k: v.value for k, v in up.outputs.items()}
        elif operation == "refresh":
            refresh = stack.refresh(on_output=on_output, color="never")
            result.summary = _counts(refresh.summary.resource_changes)
            outputs = {k: v.value for k, v in stack.outputs().items()}
        else:
            destroy = stack.destroy(on_output=on_output, color="never")
            result.summary = _counts(destroy.summary.resource_changes)
            remove_provisioned(inventory, options.kind)
            return result
    except auto.errors.CommandError as error:
        raise ProvisionError(f"pulumi {operation} of stack {options.kind} failed: {_last_line(error)}",
                             hint="the full output is above; policy violations name their RELAIS-* rule",
                             ) from None
    result.hosts = hosts_from_outputs(outputs)
    result.written = write_provisioned(inventory, options.kind, result.hosts)
    return result


def stack_name(plan: Plan, options: StackOptions) -> str:
    """One Pulumi stack per syndicate and stack kind, so one state directory can hold several."""
    ensure_importable()
    from stacks.program import slug

    return slug(plan.syndicate.domain)


def _counts(changes: Mapping[Any, Any] | None) -> dict[str, int]:
    return {str(getattr(k, "value", k)): int(v) for k, v in (changes or {}).items()}


def _last_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
