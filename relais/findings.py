"""Findings and their reports: one model for policies (`relais check`), and later audit,
drift and probes.

A :class:`Finding` is one rule applied to one subject (a host, a tenant, the plan):
it passed, failed, or failed under a waiver. A :class:`Report` gathers the findings of
one run with the metadata of the rules that produced them, decides the exit code and
renders itself as a rich table, JSON, JUnit XML (one test case per rule × subject) or
SARIF 2.1.0 (rules with help text, results located in the inventory).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from rich.markup import escape
from rich.table import Table

from relais import __version__
from relais.console import Console

REPORT_SCHEMA = "relais.findings/v1"
SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://relais.example/docs/policies"

ReportFormat = Literal["table", "json", "junit", "sarif"]
FORMATS: tuple[ReportFormat, ...] = ("table", "json", "junit", "sarif")


class Severity(StrEnum):
    """How bad a violation is. Errors fail a run; warnings only with --strict."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def sarif_level(self) -> str:
        return {"error": "error", "warning": "warning", "info": "note"}[self.value]


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    WAIVED = "waived"


@dataclass(frozen=True, slots=True)
class Location:
    """Where in the inventory a finding points: a path relative to the inventory's parent
    (the repository root in the usual layout), and a 1-based line when known."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class WaiverNote:
    reason: str
    expires: str


@dataclass(frozen=True)
class RuleInfo:
    """What a report needs to know of a rule (policies, audit checks and drift share it)."""

    id: str
    title: str
    source: str
    severity: Severity
    hint: str
    family: str
    description: str = ""


EMPTY: Mapping[str, Any] = MappingProxyType({})


class Finding(NamedTuple):
    """Immutable; a named tuple because a region makes hundreds of thousands of them."""

    rule: str
    subject: str
    severity: Severity
    status: Status
    message: str
    evidence: Mapping[str, Any] = EMPTY
    hint: str = ""
    location: Location | None = None
    waiver: WaiverNote | None = None

    @property
    def is_violation(self) -> bool:
        return self.status is Status.FAILED

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "subject": self.subject,
            "severity": self.severity.value,
            "status": self.status.value,
            "message": self.message,
            "evidence": dict(self.evidence),
            "hint": self.hint,
            "location": None if self.location is None
            else {"file": self.location.file, "line": self.location.line},
            "waiver": None if self.waiver is None
            else {"reason": self.waiver.reason, "expires": self.waiver.expires},
        }


@dataclass
class Report:
    """The findings of one run of one tool (`relais check`, later `relais audit`/`drift`)."""

    tool: str
    rules: dict[str, RuleInfo]
    findings: list[Finding]
    today: str
    inventory: str | None = None

    def violations(self, *, strict: bool = False) -> list[Finding]:
        """Failed findings that make the run fail: errors, and warnings too when strict."""
        failing = {Severity.ERROR, Severity.WARNING} if strict else {Severity.ERROR}
        return [f for f in self.findings if f.status is Status.FAILED and f.severity in failing]

    def exit_code(self, *, strict: bool = False) -> int:
        return 2 if self.violations(strict=strict) else 0

    def counts(self) -> dict[str, int]:
        by_status = Counter(f.status for f in self.findings)
        failed = [f for f in self.findings if f.status is Status.FAILED]
        by_severity = Counter(f.severity for f in failed)
        return {
            "checks": len(self.findings),
            "passed": by_status[Status.PASSED],
            "failed": by_status[Status.FAILED],
            "waived": by_status[Status.WAIVED],
            "errors": by_severity[Severity.ERROR],
            "warnings": by_severity[Severity.WARNING],
            "infos": by_severity[Severity.INFO],
        }

    def summary(self, *, strict: bool = False) -> str:
        c = self.counts()
        verdict = "violations" if self.violations(strict=strict) else "ok"
        return (f"{verdict}: {c['checks']} checks of {len(self.rules)} rules — {c['passed']} passed, "
                f"{c['errors']} errors, {c['warnings']} warnings, {c['infos']} notes, "
                f"{c['waived']} waived")

    def not_passed(self) -> list[Finding]:
        return [f for f in self.findings if f.status is not Status.PASSED]


# --------------------------------------------------------------------------- renderers


def render(report: Report, fmt: ReportFormat, *, strict: bool = False) -> str:
    """The report as text in a machine format (json, junit, sarif) or as a plain table."""
    if fmt == "json":
        return json.dumps(to_json(report, strict=strict), ensure_ascii=False, indent=2) + "\n"
    if fmt == "junit":
        return to_junit(report)
    if fmt == "sarif":
        return json.dumps(to_sarif(report), ensure_ascii=False, indent=2) + "\n"
    console = Console()
    from io import StringIO

    from rich.console import Console as RichConsole

    buffer = StringIO()
    console.out = RichConsole(file=buffer, width=200, highlight=False, soft_wrap=True,
                              color_system=None)
    print_table(report, console, strict=strict)
    return buffer.getvalue()


_SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def print_table(report: Report, console: Console, *, strict: bool = False,
                show_passed: bool = False) -> None:
    """Failed and waived findings, worst first, then one summary line."""
    shown = report.findings if show_passed else report.not_passed()
    order = {Status.FAILED: 0, Status.WAIVED: 1, Status.PASSED: 2}
    rank = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
    shown = sorted(shown, key=lambda f: (order[f.status], rank[f.severity], f.rule, f.subject))
    if shown:
        table = Table(title=f"{report.tool}: findings", title_justify="left", title_style="bold",
                      show_lines=False)
        for column in ("rule", "subject", "severity", "status", "message", "where / fix"):
            table.add_column(column, overflow="fold")
        for f in shown:
            style = _SEVERITY_STYLE[f.severity] if f.status is Status.FAILED else "dim"
            detail = f"{f.location}" if f.location else ""
            if f.status is Status.WAIVED and f.waiver is not None:
                detail = f"waived until {f.waiver.expires}: {f.waiver.reason}"
            elif f.hint:
                detail = f"{detail}\nfix: {f.hint}" if detail else f"fix: {f.hint}"
            table.add_row(escape(f.rule), escape(f.subject), f"[{style}]{f.severity.value}[/]",
                          f.status.value, escape(f.message), escape(detail))
        console.print(table)
    verdict_style = "red" if report.violations(strict=strict) else "green"
    console.print(f"[{verdict_style}]{escape(report.summary(strict=strict))}[/]")


def to_json(report: Report, *, strict: bool = False) -> dict[str, Any]:
    return {
        "schema": REPORT_SCHEMA,
        "tool": report.tool,
        "version": __version__,
        "today": report.today,
        "inventory": report.inventory,
        "ok": not report.violations(strict=strict),
        "strict": strict,
        "counts": report.counts(),
        "rules": [rule_dict(r) for r in report.rules.values()],
        "findings": [f.as_dict() for f in report.findings],
    }


def rule_dict(rule: RuleInfo) -> dict[str, Any]:
    return {"id": rule.id, "title": rule.title, "source": rule.source, "severity": rule.severity.value,
            "family": rule.family, "hint": rule.hint, "description": rule.description}


def _failure_text(f: Finding) -> str:
    lines = [f.message]
    if f.location:
        lines.append(f"location: {f.location}")
    for key, value in f.evidence.items():
        lines.append(f"{key}: {json.dumps(value, ensure_ascii=False)}")
    if f.hint:
        lines.append(f"fix: {f.hint}")
    return "\n".join(lines)


def to_junit(report: Report) -> str:
    """JUnit XML (Jenkins/Ant junit-10.xsd): a test suite per rule, a test case per subject.

    Violations are failures (type = severity), waived findings are skipped with the
    waiver's reason and expiry, passes are plain test cases; CI servers show them all.
    """
    by_rule: dict[str, list[Finding]] = {}
    for f in report.findings:
        by_rule.setdefault(f.rule, []).append(f)
    counts = report.counts()
    root = ET.Element("testsuites", {
        "name": report.tool, "tests": str(counts["checks"]), "failures": str(counts["failed"]),
        "errors": "0", "time": "0",
    })
    for rule_id in sorted(by_rule):
        findings = by_rule[rule_id]
        rule = report.rules.get(rule_id)
        suite = ET.SubElement(root, "testsuite", {
            "name": f"{rule_id} {rule.title}" if rule else rule_id,
            "tests": str(len(findings)),
            "failures": str(sum(1 for f in findings if f.status is Status.FAILED)),
            "errors": "0",
            "skipped": str(sum(1 for f in findings if f.status is Status.WAIVED)),
            "time": "0",
            "timestamp": f"{report.today}T00:00:00",
        })
        if rule is not None:
            props = ET.SubElement(suite, "properties")
            for name, value in (("source", rule.source), ("severity", rule.severity.value),
                                ("family", rule.family)):
                ET.SubElement(props, "property", {"name": name, "value": value})
        for f in findings:
            case = ET.SubElement(suite, "testcase", {
                "name": f.subject, "classname": f"{report.tool.replace(' ', '.')}.{rule_id}", "time": "0",
            })
            if f.status is Status.FAILED:
                failure = ET.SubElement(case, "failure", {"type": f.severity.value, "message": f.message})
                failure.text = _failure_text(f)
            elif f.status is Status.WAIVED and f.waiver is not None:
                skipped = ET.SubElement(case, "skipped", {
                    "type": "waived",
                    "message": f"waived until {f.waiver.expires}: {f.waiver.reason}"})
                skipped.text = _failure_text(f)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _sarif_rule(rule: RuleInfo) -> dict[str, Any]:
    help_text = (f"{rule.description}\n\nSource: {rule.source}\nFix: {rule.hint}" if rule.description
                 else f"Source: {rule.source}\nFix: {rule.hint}")
    return {
        "id": rule.id,
        "name": "".join(part.capitalize() for part in rule.title.replace("'", " ").split()[:8]),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.description or rule.title},
        "help": {"text": help_text, "markdown": f"**{rule.title}**\n\n{rule.description}\n\n"
                 f"*Source*: {rule.source}\n\n*Fix*: {rule.hint}"},
        "defaultConfiguration": {"level": rule.severity.sarif_level},
        "properties": {"tags": [rule.family], "source": rule.source},
    }


def to_sarif(report: Report) -> dict[str, Any]:
    """SARIF 2.1.0: failed findings as results, waived ones as results with an accepted
    external suppression (GitHub shows them as dismissed); passes are not listed."""
    rule_ids = list(report.rules)
    index = {rule_id: i for i, rule_id in enumerate(rule_ids)}
    results: list[dict[str, Any]] = []
    for f in report.not_passed():
        result: dict[str, Any] = {
            "ruleId": f.rule,
            "level": f.severity.sarif_level,
            "message": {"text": f"{f.subject}: {f.message}" + (f" Fix: {f.hint}" if f.hint else "")},
            "partialFingerprints": {"relaisSubject/v1": f"{f.rule}:{f.subject}"},
            "properties": {"subject": f.subject, "evidence": dict(f.evidence)},
        }
        if f.rule in index:
            result["ruleIndex"] = index[f.rule]
        if f.location is not None:
            physical: dict[str, Any] = {"artifactLocation": {"uri": f.location.file}}
            if f.location.line:
                physical["region"] = {"startLine": f.location.line}
            result["locations"] = [{"physicalLocation": physical}]
        if f.status is Status.WAIVED and f.waiver is not None:
            result["suppressions"] = [{
                "kind": "external", "status": "accepted",
                "justification": f"{f.waiver.reason} (waiver expires {f.waiver.expires})",
            }]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "relais",
                "semanticVersion": __version__,
                "informationUri": INFORMATION_URI,
                "rules": [_sarif_rule(report.rules[r]) for r in rule_ids],
            }},
            "automationDetails": {"id": f"{report.tool}/{report.today}"},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }


def merge(tool: str, reports: Iterable[Report]) -> Report:
    """One report from several (e.g. policies + audit of the same run)."""
    rules: dict[str, RuleInfo] = {}
    findings: list[Finding] = []
    today = ""
    inventory = None
    for r in reports:
        rules.update(r.rules)
        findings.extend(r.findings)
        today = today or r.today
        inventory = inventory or r.inventory
    return Report(tool=tool, rules=rules, findings=findings, today=today, inventory=inventory)


def rules_table(rules: Mapping[str, RuleInfo], console: Console) -> None:
    table = Table(title="Rules", title_justify="left", title_style="bold")
    for column in ("id", "severity", "title", "source"):
        table.add_column(column, overflow="fold")
    for rule in rules.values():
        table.add_row(rule.id, rule.severity.value, escape(rule.title), escape(rule.source))
    console.print(table)
