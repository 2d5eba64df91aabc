"""Build small inventories of real communes for planner and CLI tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from relais.referential import Referential, slugify

HOSTING = """\
version: 1
syndicate: {{name: Test, domain: messagerie.test.example, contact: ops@test.example}}
sites:
  caen: {{country: FR, city: Caen}}
  rouen: {{country: FR, city: Rouen}}
shared_homeserver: {{host: {shared}}}
hosts:
{hosts}
"""


def host_line(name: str, site: str, roles: str, ram: str = "8GiB", disk: str = "200GiB") -> str:
    return (f"  {name}: {{site: {site}, roles: [{roles}], provider: lab, "
            f"capacity: {{ram: {ram}, disk: {disk}, vcpu: 2}}}}")


DEFAULT_HOSTS = [
    host_line("msg-a", "caen", "messaging, proxy, database"),
    host_line("msg-b", "rouen", "messaging, proxy, database"),
    host_line("bk-caen", "caen", "backup", disk="10TiB"),
    host_line("bk-rouen", "rouen", "backup", disk="10TiB"),
]


def write_hosting(root: Path, hosts: list[str] | None = None, shared: str = "msg-b") -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "communes").mkdir(exist_ok=True)
    text = HOSTING.format(hosts="\n".join(hosts or DEFAULT_HOSTS), shared=shared)
    (root / "hosting.yaml").write_text(text, encoding="utf-8")


def commune_path(root: Path, ref: Referential, insee: str) -> Path:
    official = ref.current(insee)
    assert official is not None, insee
    return root / "communes" / f"{insee}-{slugify(official.name)}.yaml"


def write_commune(root: Path, ref: Referential, insee: str, flavor: str = "xmpp",
                  seats: int = 1, status: str = "active") -> Path:
    official = ref.current(insee)
    assert official is not None, insee
    siren = f'  siren: "{official.siren}"\n' if official.siren else ""
    path = commune_path(root, ref, insee)
    path.write_text(
        "version: 1\n"
        f'commune:\n  insee: "{insee}"\n  name: "{official.name}"\n{siren}'
        "contacts:\n  mairie: mairie@commune.example.fr\n"
        "  dpo: {name: Centre de gestion, email: dpo@cdg.example.fr}\n"
        f"tenant:\n  flavor: {flavor}\n  seats: {seats}\n  status: {status}\n",
        encoding="utf-8",
    )
    return path


def remove_commune(root: Path, ref: Referential, insee: str) -> None:
    commune_path(root, ref, insee).unlink()


def copy_inventory(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("secrets"))
    return target
