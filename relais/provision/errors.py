"""Errors of `relais provision`."""

from __future__ import annotations

from relais.errors import RelaisError


class ProvisionError(RelaisError):
    """A stack cannot be described, previewed or applied."""


class PulumiMissing(ProvisionError):
    """The `pulumi` CLI, which the Automation API drives, is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "the `pulumi` CLI is not installed (the Automation API drives it for preview, up, "
            "refresh and destroy)",
            hint="install it with `curl -fsSL https://get.pulumi.com | sh` (or your distribution's "
            "package) and put it on PATH, or set RELAIS_PULUMI to its path; "
            "`relais provision preview --offline` works without it",
        )
