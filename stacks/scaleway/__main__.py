"""Pulumi project `relais-scaleway`: wiring only (the stack is stacks/program.py fed with the Plan).

Usually run through `relais provision ... --stack scaleway`; `pulumi up` here works too, with
RELAIS_INVENTORY naming the inventory.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from relais.provision import project_main

project_main("scaleway")
