"""The lab bridge, its isolation rules and the controller's names for lab hosts."""

from __future__ import annotations

import hashlib
from pathlib import Path

from relais.errors import LabError
from relais.lab import config, system
from relais.lab.config import LabSpec

ETC_HOSTS = Path("/etc/hosts")


def ensure_bridge(spec: LabSpec) -> list[str]:
    changes: list[str] = []
    name = spec.bridge
    if system.link_exists(name) and not Path("/sys/class/net", name, "bridge").is_dir():
        raise LabError(
            f"network interface {name} exists and is not a bridge",
            hint="choose another lab bridge name in hosting.yaml (lab: bridge:)",
        )
    if not system.link_exists(name):
        system.run(["ip", "link", "add", name, "type", "bridge"])
        changes.append(f"bridge {name} created")
    # The lab is IPv4 only; no IPv6 link-local address for the controller on the bridge.
    disable_v6 = Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6")
    if disable_v6.exists() and disable_v6.read_text().strip() != "1":
        disable_v6.write_text("1\n")
    wanted = f"{spec.gateway}/{spec.prefixlen}"
    current = system.ipv4_addresses(name)
    if current != [wanted]:
        system.run(["ip", "-4", "addr", "flush", "dev", name])
        system.run(["ip", "addr", "add", wanted, "dev", name])
        changes.append(f"bridge {name} address set to {wanted}")
    flags = int(Path("/sys/class/net", name, "flags").read_text().strip(), 16)
    if not flags & 0x1:
        system.run(["ip", "link", "set", name, "up"])
        changes.append(f"bridge {name} up")
    return changes


def remove_bridge(name: str) -> bool:
    if not system.link_exists(name) or not Path("/sys/class/net", name, "bridge").is_dir():
        return False
    system.run(["ip", "link", "delete", name])
    return True


def _table_exists() -> bool:
    return system.run(["nft", "list", "table", "inet", config.NFT_TABLE], check=False).returncode == 0


def ensure_isolation(spec: LabSpec, applied_file: Path) -> bool:
    """Install the nftables table that keeps the lab on this machine (atomically replaced)."""
    ruleset = config.nft_ruleset(spec)
    digest = hashlib.sha256(ruleset.encode()).hexdigest()
    applied = applied_file.read_text().strip() if applied_file.is_file() else ""
    if applied == digest and _table_exists():
        return False
    script = f"table inet {config.NFT_TABLE}\ndelete table inet {config.NFT_TABLE}\n{ruleset}"
    system.run(["nft", "-f", "-"], input_text=script)
    applied_file.write_text(digest + "\n")
    return True


def remove_isolation(applied_file: Path) -> bool:
    applied_file.unlink(missing_ok=True)
    if not _table_exists():
        return False
    system.run(["nft", "delete", "table", "inet", config.NFT_TABLE])
    return True


def isolation_active(spec: LabSpec) -> bool:
    """Is the forward drop for the lab bridge in place? (read from the live ruleset)"""
    result = system.run(["nft", "list", "chain", "inet", config.NFT_TABLE, "forward"], check=False)
    return result.returncode == 0 and f'iifname "{spec.bridge}" oifname != "{spec.bridge}"' in result.stdout


def set_etc_hosts(spec: LabSpec | None, path: Path = ETC_HOSTS) -> bool:
    """Add (or remove, with None) the controller's names for lab hosts in /etc/hosts."""
    current = path.read_text() if path.exists() else ""
    block = config.etc_hosts_block(spec) if spec and spec.hosts else None
    updated = config.replace_managed_block(current, block)
    if updated == current:
        return False
    # In place, not by rename: /etc/hosts is often a bind mount in containers.
    with path.open("w") as handle:
        handle.write(updated)
    return True
