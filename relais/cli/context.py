"""What every verb shares: where the inventory is and how to load and plan it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relais.plan import Plan

SHIPPED_INVENTORY = Path(__file__).resolve().parent.parent.parent / "inventory"


def default_inventory() -> Path:
    env = os.environ.get("RELAIS_INVENTORY")
    if env:
        return Path(env)
    local = Path("inventory")
    if (local / "hosting.yaml").is_file():
        return local
    return SHIPPED_INVENTORY


@dataclass
class State:
    inventory: Path


def load_plan(state: State) -> Plan:
    """Load the inventory, check it against the referential and plan it (pure, no writes)."""
    from relais.planner import plan_directory

    return plan_directory(state.inventory).plan
