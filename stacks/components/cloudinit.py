"""cloud-init user data: the one thing a new host needs before `relais deploy` takes over."""

from __future__ import annotations

import json


def user_data(*, hostname: str, fqdn: str, controller_keys: list[str]) -> str:
    """Install the controller's SSH key for root (as on lab hosts) and nothing else: the
    deploys (base, harden) own the rest, including the operators' accounts.

    Written as JSON, which is YAML, so no key or name can break the document.
    """
    config = {
        "hostname": hostname,
        "fqdn": fqdn,
        "prefer_fqdn_over_hostname": False,
        "disable_root": False,
        "ssh_pwauth": False,
        "users": [{"name": "root", "lock_passwd": True, "ssh_authorized_keys": controller_keys}],
        "package_update": True,
        "packages": ["python3"],
    }
    return "#cloud-config\n" + json.dumps(config, indent=2, ensure_ascii=False) + "\n"
