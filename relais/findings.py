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
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import compress, count, groupby, repeat
from operator import is_not, itemgetter
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, TypeVar

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
    _not_passed: tuple[list[Finding], int, list[Finding]] | None = field(
        default=None, init=False, repr=False, compare=False)
    _outcomes: object = field(default=None, init=False, repr=False, compare=False)
    """What the findings were made from, freed with the report (see `policies.engine`)."""

    def violations(self, *, strict: bool = False) -> list[Finding]:
        """Failed findings that make the run fail: errors, and warnings too when strict."""
        return _violations(self.not_passed(), strict)

    def exit_code(self, *, strict: bool = False) -> int:
        return 2 if self.violations(strict=strict) else 0

    def counts(self) -> dict[str, int]:
        return self._counts(self.not_passed())

    def _counts(self, not_passed: list[Finding]) -> dict[str, int]:
        # Passes are nearly all of a region's findings: only the others (a few hundred for all
        # of France, found in C by `not_passed`) are looked at one by one.
        by_status = Counter(f.status for f in not_passed)
        by_severity = Counter(f.severity for f in not_passed if f.status is Status.FAILED)
        return {
            "checks": len(self.findings),
            "passed": len(self.findings) - len(not_passed),
            "failed": by_status[Status.FAILED],
            "waived": by_status[Status.WAIVED],
            "errors": by_severity[Severity.ERROR],
            "warnings": by_severity[Severity.WARNING],
            "infos": by_severity[Severity.INFO],
        }

    def summary(self, *, strict: bool = False) -> str:
        not_passed = self.not_passed()
        c = self._counts(not_passed)
        verdict = "violations" if _violations(not_passed, strict) else "ok"
        return (f"{verdict}: {c['checks']} checks of {len(self.rules)} rules — {c['passed']} passed, "
                f"{c['errors']} errors, {c['warnings']} warnings, {c['infos']} notes, "
                f"{c['waived']} waived")

    def not_passed(self) -> list[Finding]:
        findings = self.findings
        cached = self._not_passed
        if cached is None or cached[0] is not findings or cached[1] != len(findings):
            # compress/map/is_not run in C, but reading 420,000 findings scattered in memory
            # still takes ~35 ms, and a table asks four times: kept while the list is the same
            # and of the same length (findings are appended, never replaced in place).
            found = list(compress(findings, map(is_not, map(_STATUS, findings), repeat(Status.PASSED))))
            cached = self._not_passed = (findings, len(findings), found)
        return list(cached[2])


def _violations(not_passed: list[Finding], strict: bool) -> list[Finding]:
    failing = {Severity.ERROR, Severity.WARNING} if strict else {Severity.ERROR}
    return [f for f in not_passed if f.status is Status.FAILED and f.severity in failing]


_RULE, _SUBJECT, _STATUS = itemgetter(0), itemgetter(1), itemgetter(3)
"""Finding.rule, .subject and .status, read by C code (Finding is a tuple)."""


# --------------------------------------------------------------------------- renderers


def render(report: Report, fmt: ReportFormat, *, strict: bool = False) -> str:
    """The report as text in a machine format (json, junit, sarif) or as a plain table."""
    if fmt == "json":
        return _json_text(report, strict=strict)
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


def write_report(report: Report, fmt: ReportFormat, path: Path, *, strict: bool = False) -> None:
    """`render(report, fmt)` written to `path` in UTF-8, piece by piece: a large JSON or JUnit
    report is not joined into one string (and its helper's half not decoded) on the way."""
    if fmt == "json":
        parts = _json_parts(report, strict=strict)
    elif fmt == "junit":
        parts = _junit_parts(report)
    else:
        parts = [render(report, fmt, strict=strict)]
    with path.open("wb") as out:
        for part in parts:
            out.write(part.encode("utf-8") if isinstance(part, str) else part)


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


def to_json(report: Report, *, strict: bool = False, findings: bool = True) -> dict[str, Any]:
    data = {
        "schema": REPORT_SCHEMA,
        "tool": report.tool,
        "version": __version__,
        "today": report.today,
        "inventory": report.inventory,
        "ok": not report.violations(strict=strict),
        "strict": strict,
        "counts": report.counts(),
        "rules": [rule_dict(r) for r in report.rules.values()],
    }
    if findings:
        data["findings"] = [f.as_dict() for f in report.findings]
    return data


PARALLEL_MIN_FINDINGS = 100_000
"""From this many findings on, JSON and JUnit reports are written on two cores (`_joined`)."""

T = TypeVar("T")


def _joined(render: Callable[[T], str], items: Sequence[T], sep: str,
            weights: Sequence[int] | None = None) -> str:
    return _text(_joined_parts(render, items, sep, weights))


def _text(parts: Iterable[str | bytes]) -> str:
    return "".join(p if isinstance(p, str) else p.decode("utf-8") for p in parts)


def _joined_parts(render: Callable[[T], str], items: Sequence[T], sep: str,
                  weights: Sequence[int] | None = None) -> list[str | bytes]:
    """`sep.join(map(render, items))`; for large reports, a forked helper renders the second
    half (by weight) while this process renders the first, and sends its text through a pipe.

    Same text as the sequential join: if the helper cannot start or fails, this process
    renders its half too. RELAIS_WORKERS=1 (see relais.inventory) keeps everything here.
    """
    total = sum(weights) if weights is not None else len(items)
    if total < PARALLEL_MIN_FINDINGS or len(items) < 2 or not hasattr(os, "fork"):
        return [sep.join(map(render, items))]
    from relais.inventory import workers

    if workers() < 2:
        return [sep.join(map(render, items))]
    middle, done = 0, 0
    while middle < len(items) - 1 and done < total / 2:
        done += weights[middle] if weights is not None else 1
        middle += 1
    first, second = items[:middle], items[middle:]
    from relais.forked import Background

    rest = Background(lambda: sep.join(map(render, second)).encode("utf-8"))
    try:
        head = sep.join(map(render, first))
        return [head, sep, rest.result()]
    finally:
        rest.close()


def _json_text(report: Report, *, strict: bool = False) -> str:
    return _text(_json_parts(report, strict=strict))


def _json_parts(report: Report, *, strict: bool = False) -> list[str | bytes]:
    """`to_json(report)` as `json.dumps(..., ensure_ascii=False, indent=2)` writes it, byte for
    byte, in a fraction of the time: json's indenting encoder is pure Python (46 s of profile
    for the 420,000 findings of all of France), so each finding is written from a template
    and only evidence values that are containers go through `json.dumps`."""
    head = {**to_json(report, strict=strict, findings=False), "findings": []}
    text = json.dumps(head, ensure_ascii=False, indent=2)
    if not report.findings:
        return [text, "\n"]
    assert text.endswith('"findings": []\n}')
    return [text[:-3], "\n", *_joined_parts(_finding_json, report.findings, ",\n"), "\n  ]\n}\n"]


_enc = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) quotes strings with
_INDENTS = ["\n" + "  " * level for level in range(16)]


def _json_value(value: Any, level: int) -> str:
    """`value` as json.dumps(indent=2, ensure_ascii=False) writes it `level` indents deep."""
    scalar = _SCALARS.get(type(value))
    if scalar is not None:
        return scalar(value)
    kind = type(value)
    if level < 14:
        if kind is list or kind is tuple:
            if not value:
                return "[]"
            inner = _INDENTS[level + 1]
            return "[" + inner + ("," + inner).join([_json_value(v, level + 1) for v in value]) \
                + _INDENTS[level] + "]"
        if kind is dict:
            if not value:
                return "{}"
            parts = []
            for k, v in value.items():
                if type(k) is not str:
                    break
                scalar = _SCALARS.get(type(v))
                parts.append(f"{_enc(k)}: {scalar(v) if scalar is not None else _json_value(v, level + 1)}")
            else:
                inner = _INDENTS[level + 1]
                return "{" + inner + ("," + inner).join(parts) + _INDENTS[level] + "}"
    # Anything else (floats, other key types, subclasses, deep nesting): json itself, at this depth.
    return json.dumps(value, ensure_ascii=False, indent=2).replace("\n", _INDENTS[level])


_SCALARS: dict[type, Callable[[Any], str]] = {
    str: _enc, int: int.__repr__, bool: {True: "true", False: "false"}.__getitem__,
    type(None): lambda _: "null",
}
"""Exact types written the same at every depth, as json writes them."""


_VALUES: dict[Any, str] = {**{s: _enc(s.value) for s in Severity}, **{s: _enc(s.value) for s in Status}}
"""Severities and statuses as JSON text (an enum's `.value` is a slow property)."""


def _finding_json(f: Finding) -> str:
    try:
        return _finding_template(f)
    except (TypeError, AttributeError, KeyError):  # a field of an unusual type: let json write it
        return "    " + _json_value(f.as_dict(), 2)


def _finding_template(f: Finding) -> str:
    rule, subject, severity, status, message, evidence, hint, location, waiver = f
    return (
        f'    {{\n      "rule": {_enc(rule)},\n      "subject": {_enc(subject)},\n'
        f'      "severity": {_VALUES[severity]},\n      "status": {_VALUES[status]},\n'
        f'      "message": {_enc(message)},\n      "evidence": '
        f'{_json_value(evidence if type(evidence) is dict else dict(evidence), 3)},\n'
        f'      "hint": {_enc(hint)},\n      "location": '
        + ("null" if location is None else
           f'{{\n        "file": {_json_value(location.file, 4)},\n'
           f'        "line": {_json_value(location.line, 4)}\n      }}')
        + ',\n      "waiver": '
        + ("null" if waiver is None else
           f'{{\n        "reason": {_json_value(waiver.reason, 4)},\n'
           f'        "expires": {_json_value(waiver.expires, 4)}\n      }}')
        + "\n    }"
    )


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
    return _text(_junit_parts(report))


def _junit_parts(report: Report) -> list[str | bytes]:
    """JUnit XML (Jenkins/Ant junit-10.xsd): a test suite per rule, a test case per subject.

    Violations are failures (type = severity), waived findings are skipped with the
    waiver's reason and expiry, passes are plain test cases; CI servers show them all.

    Written as text, line by line, exactly as ElementTree (`ET.indent`, then `ET.tostring`)
    wrote the same tree: the tree of 420,000 test cases for all of France took 3 s to build
    and serialize, the lines take a fraction of that.
    """
    by_rule: dict[str, list[Finding]] = {}
    # Runs of findings of one rule (a check's findings come rule by rule), grouped in C.
    for rule_id, run in groupby(report.findings, _RULE):
        if rule_id in by_rule:
            by_rule[rule_id].extend(run)
        else:
            by_rule[rule_id] = list(run)
    counts = report.counts()
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    write = out.append
    root = _xml_tag("testsuites", {
        "name": report.tool, "tests": str(counts["checks"]), "failures": str(counts["failed"]),
        "errors": "0", "time": "0",
    })
    if not by_rule:
        return [*out, root, " />\n"]
    write(root + ">")
    classname_prefix = f"{report.tool.replace(' ', '.')}."

    def suite(rule_id: str) -> str:
        findings = by_rule[rule_id]
        rule = report.rules.get(rule_id)
        # Positions of the findings that did not pass, found in C (nearly all of a region's pass).
        others = list(compress(count(), map(is_not, map(_STATUS, findings), repeat(Status.PASSED))))
        not_passed = [findings[i] for i in others]
        out = ["\n  " + _xml_tag("testsuite", {
            "name": f"{rule_id} {rule.title}" if rule else rule_id,
            "tests": str(len(findings)),
            "failures": str(sum(1 for f in not_passed if f.status is Status.FAILED)),
            "errors": "0",
            "skipped": str(sum(1 for f in not_passed if f.status is Status.WAIVED)),
            "time": "0",
            "timestamp": f"{report.today}T00:00:00",
        }) + ">"]
        write = out.append
        if rule is not None:
            write("\n    <properties>")
            for name, value in (("source", rule.source), ("severity", rule.severity.value),
                                ("family", rule.family)):
                write(f'\n      <property name="{_attr(name)}" value="{_attr(value)}" />')
            write("\n    </properties>")
        case_tail = f'" classname="{_attr(classname_prefix + rule_id)}" time="0"'
        case_head = '\n    <testcase name="'
        passed_tail = case_tail + " />"
        start = 0
        for end in (*others, len(findings)):
            if end > start:  # a run of passes: one template, joined in C
                names = _attrs(list(map(_SUBJECT, findings[start:end])))
                write(case_head + (passed_tail + case_head).join(names) + passed_tail)
            start = end + 1
            if end == len(findings):
                break
            f = findings[end]
            status = f.status
            case = f'{case_head}{_attr(f.subject)}{case_tail}'
            if status is Status.FAILED:
                write(f'{case}>\n      <failure type="{_attr(f.severity.value)}" message="{_attr(f.message)}"'
                      f"{_xml_text('failure', _failure_text(f))}\n    </testcase>")
            elif status is Status.WAIVED and f.waiver is not None:
                message = f"waived until {f.waiver.expires}: {f.waiver.reason}"
                write(f'{case}>\n      <skipped type="waived" message="{_attr(message)}"'
                      f"{_xml_text('skipped', _failure_text(f))}\n    </testcase>")
            else:
                write(case + " />")
        write("\n  </testsuite>")
        return "".join(out)

    # In this process: passes are joined from a template in C (0.2 s for all of France), less
    # than forking a helper for half of them would cost (the fork of a process holding the
    # inventory, then copy-on-write faults).
    return [*out, *map(suite, sorted(by_rule)), "\n</testsuites>\n"]


def _attr(text: str) -> str:
    """An attribute value escaped as ElementTree escapes it."""
    text = _cdata(text)
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    if "\t" in text:
        text = text.replace("\t", "&#09;")
    return text


_ESCAPED = ("&", "<", ">", '"', "\r", "\n", "\t")
"""The characters `_attr` changes."""


def _attrs(texts: list[str]) -> Iterable[str]:
    """`map(_attr, texts)`; the texts themselves when none of them has a character to escape
    (looked for once in their concatenation, in C)."""
    joined = "".join(texts)
    if any(c in joined for c in _ESCAPED):
        return map(_attr, texts)
    return texts


def _cdata(text: str) -> str:
    """Element text escaped as ElementTree escapes it."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _xml_text(tag: str, text: str) -> str:
    """The end of an element holding only `text` (ElementTree closes an empty one with ' />')."""
    return f">{_cdata(text)}</{tag}>" if text else " />"


def _xml_tag(tag: str, attributes: Mapping[str, str]) -> str:
    """An opening tag without its closing '>' (attributes in the given order)."""
    return f"<{tag}" + "".join(f' {name}="{_attr(value)}"' for name, value in attributes.items())


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
