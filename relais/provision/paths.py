"""Where provisioning finds its programs and pack, and keeps its state."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
STACKS_DIR = REPO_ROOT / "stacks"
POLICY_PACK_DIR = REPO_ROOT / "policies" / "crossguard"
STATE_ENV = "RELAIS_PULUMI_STATE"


def default_state_dir(environ: dict[str, str] | None = None) -> Path:
    """``$RELAIS_PULUMI_STATE``, else ``$XDG_STATE_HOME/relais/pulumi`` (``~/.local/state``)."""
    env = os.environ if environ is None else environ
    if env.get(STATE_ENV):
        return Path(env[STATE_ENV]).expanduser()
    base = Path(env["XDG_STATE_HOME"]) if env.get("XDG_STATE_HOME") else Path.home() / ".local" / "state"
    return base / "relais" / "pulumi"


def backend_url(state_dir: Path) -> str:
    """Pulumi's local file backend: the state stays in a directory the syndicate chooses."""
    return f"file://{state_dir.expanduser().resolve()}"


def ensure_importable() -> None:
    """Make the `stacks` and `policies` packages importable next to an editable install.

    They live beside `relais/` in the repository; appended, not prepended, so an installed
    package of the same name still wins.
    """
    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.append(root)
