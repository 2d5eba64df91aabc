"""The sizing model: how much memory and disk a tenant and a host reserve.

Numbers are deliberately simple and documented in docs/sizing.md. They come
from measurements on Debian 12 (Synapse 1.x idle ≈ 100 MiB RSS per homeserver;
Prosody 0.12 ≈ 1 MiB PSS per virtual host with its MUC component) plus
headroom for caches and peaks. Placement uses the reservation; the service's
MemoryMax uses the limit, so a misbehaving tenant is stopped before it starves
its neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

from relais.model import Flavor, Role


@dataclass(frozen=True)
class Need:
    ram_mib: int
    disk_mib: int
    limit_mib: int = 0


# What a host keeps for itself (OS, sshd, journald, node exporter), plus shared
# daemons its roles imply.
SYSTEM = Need(ram_mib=384, disk_mib=4 * 1024)
ROLE_OVERHEAD: dict[Role, Need] = {
    Role.MESSAGING: Need(0, 0),
    Role.DATABASE: Need(ram_mib=256, disk_mib=2 * 1024),   # PostgreSQL, small shared_buffers
    Role.PROXY: Need(ram_mib=64, disk_mib=256),            # nginx
    Role.BACKUP: Need(ram_mib=128, disk_mib=0),            # borg serve processes
    Role.MONITOR: Need(ram_mib=768, disk_mib=20 * 1024),   # Prometheus, Alertmanager, blackbox
}

# Shared services appear on a host with their first tenant.
SHARED_HOMESERVER = Need(ram_mib=384, disk_mib=4 * 1024, limit_mib=1536)
PROSODY = Need(ram_mib=64, disk_mib=512, limit_mib=512)


def host_reserved(roles: list[Role]) -> Need:
    ram = SYSTEM.ram_mib + sum(ROLE_OVERHEAD[r].ram_mib for r in roles)
    disk = SYSTEM.disk_mib + sum(ROLE_OVERHEAD[r].disk_mib for r in roles)
    return Need(ram, disk)


def tenant_need(flavor: Flavor, accounts: int) -> Need:
    """Reservation (placement) and limit (MemoryMax) of one tenant with `accounts` agents."""
    if flavor is Flavor.MATRIX_DEDICATED:
        ram = 160 + 2 * accounts                       # Synapse process + its PostgreSQL share
        return Need(ram, 1024 + 256 * accounts, limit_mib=max(512, 2 * ram))
    if flavor is Flavor.MATRIX_SHARED:
        ram = 8 + 2 * accounts                         # share of the regional homeserver
        return Need(ram, 64 + 256 * accounts, limit_mib=0)
    ram = 2 + (accounts + 3) // 4                      # a Prosody virtual host + MUC
    return Need(ram, 64 + 64 * accounts, limit_mib=0)


def backup_disk(tenant_disk_mib: int) -> int:
    """Deduplicated, compressed archives of several generations: half the live size again."""
    return tenant_disk_mib + tenant_disk_mib // 2
