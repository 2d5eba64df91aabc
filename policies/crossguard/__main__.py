"""Entry point the `pulumi` CLI runs for `--policy-pack policies/crossguard`: wiring only."""

import sys
from pathlib import Path

# The CLI runs this file from the pack's directory; the rules live in the `policies` package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policies.crossguard.rules import PACK_NAME, POLICIES

PolicyPack(name=PACK_NAME, policies=list(POLICIES), enforcement_level=EnforcementLevel.MANDATORY)
