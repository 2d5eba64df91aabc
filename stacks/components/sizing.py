"""Instance sizes chosen from a host's declared capacity: the smallest size that fits.

Flavor names differ between OpenStack clouds: the default catalogue is the classic
``m1.*`` set most regional datacenters keep; a syndicate whose cloud names them otherwise
sets ``RELAIS_OPENSTACK_FLAVORS`` (or ``RELAIS_SCALEWAY_TYPES``) to ``name:vcpu:ram_mib,...``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    name: str
    vcpu: int
    ram_mib: int


OPENSTACK_FLAVORS: tuple[Size, ...] = (
    Size("m1.small", 1, 2048),
    Size("m1.medium", 2, 4096),
    Size("m1.large", 4, 8192),
    Size("m1.xlarge", 8, 16384),
    Size("m1.2xlarge", 16, 32768),
)
SCALEWAY_TYPES: tuple[Size, ...] = (
    Size("DEV1-S", 2, 2048),
    Size("DEV1-M", 3, 4096),
    Size("DEV1-L", 4, 8192),
    Size("DEV1-XL", 4, 12288),
    Size("GP1-XS", 4, 16384),
    Size("GP1-S", 8, 32768),
    Size("GP1-M", 16, 65536),
    Size("GP1-L", 32, 131072),
)


class NoSizeFits(ValueError):
    pass


def parse_catalogue(text: str) -> tuple[Size, ...]:
    """``name:vcpu:ram_mib,...`` (the environment override)."""
    sizes = []
    for item in text.split(","):
        if not item.strip():
            continue
        try:
            name, vcpu, ram = item.strip().split(":")
            sizes.append(Size(name, int(vcpu), int(ram)))
        except ValueError:
            raise ValueError(f"{item.strip()!r} is not name:vcpu:ram_mib") from None
    if not sizes:
        raise ValueError("an empty catalogue")
    return tuple(sizes)


def pick(catalogue: tuple[Size, ...], *, vcpu: int, ram_mib: int) -> Size:
    fitting = [s for s in catalogue if s.vcpu >= vcpu and s.ram_mib >= ram_mib]
    if not fitting:
        biggest = max(catalogue, key=lambda s: (s.ram_mib, s.vcpu))
        raise NoSizeFits(f"no size offers {vcpu} vCPU and {ram_mib} MiB "
                         f"(largest: {biggest.name}, {biggest.vcpu} vCPU, {biggest.ram_mib} MiB)")
    return min(fitting, key=lambda s: (s.ram_mib, s.vcpu, s.name))
