"""Matrix homeservers (Synapse) derived from the Plan: configuration rendering (pure),
accounts and spaces to converge, and the host-side helper that applies them."""

from __future__ import annotations

from relais.matrix.homeservers import (
    DEPLOYED_STATUSES,
    SYNAPSE_VENV,
    Homeserver,
    homeserver_of,
    homeservers,
    homeservers_on,
)

__all__ = ["DEPLOYED_STATUSES", "SYNAPSE_VENV", "Homeserver", "homeserver_of", "homeservers",
           "homeservers_on"]
