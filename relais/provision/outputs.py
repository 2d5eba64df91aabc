"""Addresses of provisioned hosts, written back where the planner reads them.

``<inventory>/provisioned/<stack>.yaml`` (one file per stack, written by
``relais provision up`` and ``refresh``, removed by ``destroy``)::

    # Written by `relais provision`: addresses of the hosts this stack provisioned.
    version: 1
    stack: openstack
    hosts:
      msg-caen-1: {address: 10.160.23.5, public_address: 203.0.113.7}

The planner uses a provisioned address for every host whose ``address`` (or
``public_address``) is not declared in ``hosting.yaml``; a declared one always wins, so
bringing an existing host under Relais is declaring it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from relais.provision.errors import ProvisionError

PROVISIONED_DIR = "provisioned"
PROVISIONED_VERSION = 1
_HEADER = (
    "# Written by `relais provision`: addresses of the hosts this stack provisioned.\n"
    "# The planner reads them for hosts whose address hosting.yaml does not declare.\n"
    "# Commit it with the inventory; do not edit (run `relais provision refresh`).\n"
)


@dataclass(frozen=True, slots=True)
class ProvisionedHost:
    address: str | None
    public_address: str | None = None
    stack: str = ""


def provisioned_path(inventory: Path, stack: str) -> Path:
    return inventory / PROVISIONED_DIR / f"{stack}.yaml"


def _address(value: Any, where: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise ProvisionError(f"{where}: {value!r} is not an IP address",
                             hint="run `relais provision refresh --stack NAME` to rewrite it") from None


def hosts_from_outputs(outputs: Mapping[str, Any]) -> dict[str, ProvisionedHost]:
    """The ``hosts`` output of a stack (``{name: {address, public_address}}``)."""
    hosts = outputs.get("hosts") or {}
    if not isinstance(hosts, Mapping):
        raise ProvisionError("the stack's `hosts` output is not a mapping",
                             hint="was the stack created by another program? check `--stack`")
    result = {}
    for name, value in hosts.items():
        value = value if isinstance(value, Mapping) else {}
        result[str(name)] = ProvisionedHost(
            address=_address(value.get("address"), f"output hosts.{name}.address"),
            public_address=_address(value.get("public_address"), f"output hosts.{name}.public_address"))
    return result


def _scalar(address: str | None) -> str:
    if address is None:
        return "null"
    return f"'{address}'" if ":" in address else address


def render_provisioned(stack: str, hosts: Mapping[str, ProvisionedHost]) -> str:
    lines = [_HEADER, f"version: {PROVISIONED_VERSION}\n", f"stack: {stack}\n",
             "hosts:\n" if hosts else "hosts: {}\n"]
    for name in sorted(hosts):
        host = hosts[name]
        fields = [f"address: {_scalar(host.address)}"]
        if host.public_address:
            fields.append(f"public_address: {_scalar(host.public_address)}")
        lines.append(f"  {name}: {{{', '.join(fields)}}}\n")
    return "".join(lines)


def write_provisioned(inventory: Path, stack: str, hosts: Mapping[str, ProvisionedHost]) -> Path:
    """Write (atomically) the addresses one stack provisioned; an empty stack removes its file."""
    path = provisioned_path(inventory, stack)
    try:
        if not hosts:
            path.unlink(missing_ok=True)
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_text(render_provisioned(stack, hosts), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ProvisionError(f"cannot write {path}: {exc.strerror}",
                             hint="check the inventory directory is writable") from None
    return path


def remove_provisioned(inventory: Path, stack: str) -> None:
    write_provisioned(inventory, stack, {})


def read_provisioned(inventory: Path) -> dict[str, ProvisionedHost]:
    """Every provisioned host of every stack: what the planner merges into the Plan."""
    directory = inventory / PROVISIONED_DIR
    if not directory.is_dir():
        return {}
    hosts: dict[str, ProvisionedHost] = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            data = yaml.load(path.read_text(encoding="utf-8"),
                             Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ProvisionError(f"{path}: unreadable ({exc})",
                                 hint="run `relais provision refresh --stack NAME` to rewrite it") from None
        if not isinstance(data, dict) or data.get("version") != PROVISIONED_VERSION or not isinstance(
                data.get("hosts") or {}, dict):
            raise ProvisionError(f"{path}: expected `version: {PROVISIONED_VERSION}` and a `hosts:` mapping",
                                 hint="run `relais provision refresh --stack NAME` to rewrite it")
        stack = str(data.get("stack") or path.stem)
        for name, value in (data.get("hosts") or {}).items():
            if not isinstance(value, dict):
                raise ProvisionError(f"{path}: hosts.{name}: expected {{address: IP, public_address: IP}}",
                                     hint="run `relais provision refresh --stack NAME` to rewrite it")
            if name in hosts:
                raise ProvisionError(f"{path}: host {name} is also provisioned by stack {hosts[name].stack}",
                                     hint="a host belongs to one stack: destroy it in the other one")
            hosts[str(name)] = ProvisionedHost(
                address=_address(value.get("address"), f"{path}: hosts.{name}.address"),
                public_address=_address(value.get("public_address"), f"{path}: hosts.{name}.public_address"),
                stack=stack)
    return hosts
