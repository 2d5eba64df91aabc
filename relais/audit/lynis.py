"""Lynis (the Debian package, 3.0.8 in bookworm) on each host: its hardening index and warnings.

`lynis audit system --quick --no-colors` writes /var/log/lynis-report.dat, `key=value`
lines where list items are `key[]=value` and an item's fields are separated by `|`
(`warning[]=TEST-ID|text|details|solution|`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

COMMAND = (
    "lynis audit system --quick --no-colors >/dev/null 2>&1; "
    'echo "lynis-exit=$?"; cat /var/log/lynis-report.dat'
)
DEFAULT_THRESHOLD = 85


@dataclass(frozen=True)
class LynisItem:
    test: str
    text: str
    details: str = ""


@dataclass
class LynisReport:
    hardening_index: int | None
    version: str = ""
    warnings: list[LynisItem] = field(default_factory=list)
    suggestions: list[LynisItem] = field(default_factory=list)
    tests_skipped: list[str] = field(default_factory=list)
    exit_code: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "hardening_index": self.hardening_index,
            "version": self.version,
            "warnings": [
                f"{w.test}: {w.text}" + (f" ({w.details})" if w.details else "") for w in self.warnings
            ],
            "suggestions": len(self.suggestions),
        }


def _item(value: str) -> LynisItem:
    parts = value.split("|")
    details = parts[2] if len(parts) > 2 and parts[2] not in ("-", "") else ""
    return LynisItem(parts[0], parts[1] if len(parts) > 1 else "", details)


def parse_report(text: str) -> LynisReport:
    """/var/log/lynis-report.dat (preceded, from COMMAND, by `lynis-exit=N`)."""
    report = LynisReport(hardening_index=None)
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep or line.startswith("#"):
            continue
        if key == "lynis-exit":
            report.exit_code = int(value) if value.strip().isdigit() else None
        elif key == "hardening_index" and value.strip().isdigit():
            report.hardening_index = int(value)
        elif key == "lynis_version":
            report.version = value.strip()
        elif key == "warning[]":
            report.warnings.append(_item(value))
        elif key == "suggestion[]":
            report.suggestions.append(_item(value))
        elif key == "skipped_tests[]" or key == "tests_skipped[]":
            report.tests_skipped.append(value.strip())
    return report
