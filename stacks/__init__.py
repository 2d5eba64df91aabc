"""Pulumi projects of Relais (one per provider, plus the syndicate's DNS zone) and their
shared components. Every project reads the Plan, never raw YAML: see :mod:`stacks.program`."""
