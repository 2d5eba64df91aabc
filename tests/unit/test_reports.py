"""Report formats shared by check (and later audit and drift): JSON, JUnit, SARIF, table.

JUnit validates against the Jenkins/Ant junit-10.xsd and SARIF against the OASIS SARIF
2.1.0 schema, both vendored in tests/fixtures/schemas (see its README for their origin).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import jsonschema
import pytest
import xmlschema

from relais.findings import (
    Finding,
    Location,
    Report,
    RuleInfo,
    Severity,
    Status,
    WaiverNote,
    merge,
    render,
    to_json,
    to_junit,
    to_sarif,
)

from ..conftest import FIXTURES

SCHEMAS = FIXTURES / "schemas"

RULES = {
    "RGPD-01": RuleInfo("RGPD-01", "Every commune declares its DPO", "RGPD art. 37", Severity.ERROR,
                        "set contacts.dpo", "rgpd", "A commune must designate a DPO."),
    "CNIL-01": RuleInfo("CNIL-01", "Logs 6–12 months", "CNIL 2021", Severity.ERROR, "set logs", "rgpd"),
    "MSG-01": RuleInfo("MSG-01", "Registration is closed", "Relais", Severity.WARNING, "close it", "messaging"),
}


@pytest.fixture
def report() -> Report:
    return Report(tool="relais check", rules=RULES, today="2025-06-01", inventory="inventory", findings=[
        Finding("RGPD-01", "14118", Severity.ERROR, Status.PASSED, "ok"),
        Finding("RGPD-01", "14047", Severity.ERROR, Status.FAILED, "Bayeux: no usable DPO contact <&>",
                {"dpo_email": ""}, "set contacts.dpo", Location("inventory/communes/14047-bayeux.yaml", 8)),
        Finding("CNIL-01", "76540", Severity.ERROR, Status.WAIVED, "logs kept 30 days",
                {"logs_days": 30}, "set logs", Location("inventory/communes/76540-rouen.yaml", None),
                WaiverNote("décision du maire, 2025", "2025-12-31")),
        Finding("MSG-01", "msg-caen-1", Severity.WARNING, Status.FAILED, "registration open", {}, "close it",
                Location("inventory/hosting.yaml", 21)),
    ])


def test_exit_codes_and_counts(report: Report) -> None:
    assert report.exit_code() == 2 and report.exit_code(strict=True) == 2
    assert report.counts() == {"checks": 4, "passed": 1, "failed": 2, "waived": 1, "errors": 1,
                               "warnings": 1, "infos": 0}
    only_warning = Report("relais check", RULES, [f for f in report.findings if f.rule != "RGPD-01"],
                          "2025-06-01")
    assert only_warning.exit_code() == 0 and only_warning.exit_code(strict=True) == 2


def test_json(report: Report) -> None:
    data = json.loads(render(report, "json"))
    assert data["schema"] == "relais.findings/v1" and data["ok"] is False
    waived = next(f for f in data["findings"] if f["status"] == "waived")
    assert waived["waiver"] == {"reason": "décision du maire, 2025", "expires": "2025-12-31"}
    assert [r["id"] for r in data["rules"]] == list(RULES)
    assert to_json(report, strict=True)["strict"] is True


def test_junit_validates_against_the_junit_xsd(report: Report) -> None:
    xml = to_junit(report)
    xmlschema.XMLSchema(str(SCHEMAS / "junit-10.xsd")).validate(xml)
    root = ET.fromstring(xml)
    assert (root.get("tests"), root.get("failures")) == ("4", "2")
    suites = {s.get("name", "").split()[0]: s for s in root.iter("testsuite")}
    assert set(suites) == {"RGPD-01", "CNIL-01", "MSG-01"}
    rgpd = suites["RGPD-01"]
    assert (rgpd.get("tests"), rgpd.get("failures"), rgpd.get("skipped")) == ("2", "1", "0")
    cases = {c.get("name"): c for c in rgpd.iter("testcase")}
    failure = cases["14047"].find("failure")
    assert failure is not None and failure.get("type") == "error"
    assert "inventory/communes/14047-bayeux.yaml:8" in (failure.text or "")
    assert "fix: set contacts.dpo" in (failure.text or "")
    assert cases["14118"].find("failure") is None
    skipped = next(suites["CNIL-01"].iter("testcase")).find("skipped")
    assert skipped is not None and "2025-12-31" in (skipped.get("message") or "")


def test_junit_passes_around_failures_keep_their_order_and_escaping() -> None:
    """Runs of passes are written from one template; subjects needing escaping, findings of a
    rule split across the list and failures between passes come out as ElementTree reads them."""
    subjects = ["a", 'b"&<>\tq', "c", "d\ne", "f", "g"]
    statuses = [Status.PASSED, Status.PASSED, Status.FAILED, Status.PASSED, Status.WAIVED, Status.PASSED]
    findings = [Finding("RGPD-01", s, Severity.ERROR, st, "ok" if st is Status.PASSED else "bad",
                        waiver=WaiverNote("why", "2099-01-01") if st is Status.WAIVED else None)
                for s, st in zip(subjects, statuses, strict=True)]
    report = Report(tool="relais check", rules=RULES, today="2025-06-01", findings=[
        *findings[:3], Finding("MSG-01", "x", Severity.WARNING, Status.PASSED, "ok"), *findings[3:]])
    xml = to_junit(report)
    xmlschema.XMLSchema(str(SCHEMAS / "junit-10.xsd")).validate(xml)
    suites = {s.get("name", "").split()[0]: s for s in ET.fromstring(xml).iter("testsuite")}
    cases = list(suites["RGPD-01"].iter("testcase"))
    assert [c.get("name") for c in cases] == subjects
    assert [(c.find("failure") is not None, c.find("skipped") is not None) for c in cases] == [
        (False, False), (False, False), (True, False), (False, False), (False, True), (False, False)]
    assert (suites["RGPD-01"].get("tests"), suites["RGPD-01"].get("failures"),
            suites["RGPD-01"].get("skipped")) == ("6", "1", "1")
    plain = to_junit(Report(tool="relais check", rules=RULES, today="2025-06-01", findings=[
        Finding("RGPD-01", s, Severity.ERROR, Status.PASSED, "ok") for s in ("a", "b")]))
    assert '<testcase name="a" classname="relais.check.RGPD-01" time="0" />\n' \
           '    <testcase name="b" classname="relais.check.RGPD-01" time="0" />' in plain


def test_sarif_validates_against_the_sarif_schema(report: Report) -> None:
    schema = json.loads((SCHEMAS / "sarif-2.1.0.json").read_text())
    sarif = json.loads(render(report, "sarif"))
    jsonschema.Draft4Validator.check_schema(schema)
    jsonschema.validate(sarif, schema, cls=jsonschema.Draft4Validator)
    run = sarif["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(RULES)
    assert "A commune must designate a DPO." in rules[0]["help"]["text"]
    assert rules[2]["defaultConfiguration"]["level"] == "warning"
    results = {r["properties"]["subject"]: r for r in run["results"]}
    assert set(results) == {"14047", "76540", "msg-caen-1"}  # passes are not listed
    bayeux = results["14047"]
    assert bayeux["ruleId"] == "RGPD-01" and bayeux["ruleIndex"] == 0 and bayeux["level"] == "error"
    location = bayeux["locations"][0]["physicalLocation"]
    assert location == {"artifactLocation": {"uri": "inventory/communes/14047-bayeux.yaml"},
                        "region": {"startLine": 8}}
    assert "region" not in results["76540"]["locations"][0]["physicalLocation"]
    assert results["76540"]["suppressions"][0]["status"] == "accepted"


def test_the_sarif_schema_rejects_a_broken_log() -> None:
    # The vendored schema is strict enough to catch mistakes a renderer could make.
    schema = json.loads((SCHEMAS / "sarif-2.1.0.json").read_text())
    broken = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "relais"}},
                                            "results": [{"ruleId": "X", "level": "fatal", "message": {}}]}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft4Validator)


def test_the_junit_schema_rejects_a_broken_report() -> None:
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        xmlschema.XMLSchema(str(SCHEMAS / "junit-10.xsd")).validate("<testsuites><testsuite/></testsuites>")


def test_table(report: Report) -> None:
    text = render(report, "table")
    assert "RGPD-01" in text and "14047-bayeux.yaml:8" in text and "waived until 2025-12-31" in text
    assert text.index("RGPD-01") < text.index("MSG-01") < text.index("CNIL-01")  # errors, warnings, waived
    assert "violations: 4 checks of 3 rules — 1 passed, 1 errors, 1 warnings, 0 notes, 1 waived" in text


def test_empty_report_renders_everywhere() -> None:
    empty = Report("relais check", {}, [], "2025-06-01")
    xmlschema.XMLSchema(str(SCHEMAS / "junit-10.xsd")).validate(to_junit(empty))
    jsonschema.validate(to_sarif(empty), json.loads((SCHEMAS / "sarif-2.1.0.json").read_text()),
                        cls=jsonschema.Draft4Validator)
    assert "ok: 0 checks" in render(empty, "table")


def test_merge_reports(report: Report) -> None:
    other = Report("relais audit", {"X-01": RULES["MSG-01"]}, [report.findings[0]], "2025-06-01")
    merged = merge("relais ci", [report, other])
    assert len(merged.findings) == 5 and "X-01" in merged.rules
