"""The Relais CrossGuard pack: the rules Pulumi applies to every resource a stack would create.

The rules are pure ``validate(args, report_violation)`` functions in :mod:`.rules`;
``__main__.py`` only wires them into a ``PolicyPack`` for the ``pulumi`` CLI, and
:func:`.rules.check` runs the same functions without the engine (offline preview, tests).
"""

from policies.crossguard.rules import PACK_NAME, POLICIES, Violation, check

__all__ = ["PACK_NAME", "POLICIES", "Violation", "check"]
