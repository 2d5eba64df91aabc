"""The lab for tests/lab: brought up once per session from the shipped example region,
taken down at the end. Needs root and the packages of scripts/lab-prereqs.sh; tests
fail (they are never skipped) when those are missing, with the lab's own message.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from relais.cli.context import State, default_inventory, load_plan
from relais.deploy import DeployReport, deploy_plan
from relais.lab import Lab, UpResult
from relais.lab.progress import RichReporter
from relais.plan import Plan
from relais.secrets import init_key_file

LAB_TESTS = Path(__file__).resolve().parent
TEARDOWN_MODULE = "test_teardown.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every lab test is marked `lab`; the teardown test runs last (this hook sees the items
    of the whole session: only those under tests/lab are touched)."""
    for item in items:
        if LAB_TESTS in item.path.parents:
            item.add_marker(pytest.mark.lab)
    items.sort(key=lambda item: item.path == LAB_TESTS / TEARDOWN_MODULE)


@pytest.fixture(scope="session")
def plan() -> Plan:
    return load_plan(State(inventory=default_inventory()))


@pytest.fixture(scope="session")
def lab_up(plan: Plan) -> Iterator[tuple[Lab, UpResult]]:
    """The example region's lab, up for the whole session; down afterwards, whatever happened
    (unless RELAIS_LAB_KEEP=1, for a developer who goes on with it; tests/lab's teardown test
    takes it down in any case)."""
    lab = Lab(plan, reporter=RichReporter())
    try:
        result = lab.up()
        yield lab, result
    finally:
        if os.environ.get("RELAIS_LAB_KEEP") != "1":
            lab.down()


@pytest.fixture(scope="session")
def lab(lab_up: tuple[Lab, UpResult]) -> Lab:
    return lab_up[0]


@pytest.fixture(scope="session")
def deployed(lab: Lab, plan: Plan) -> DeployReport:
    """Every host of the lab converged once by `relais deploy` (shared by the tests that need
    deployed hosts). The vault key is created on first use, as `relais secrets init` does."""
    init_key_file()
    report = deploy_plan(plan, default_inventory())
    failures = [(h.host, h.error, [o.as_dict() for o in h.operations if not o.success])
                for h in report.hosts if h.failed]
    assert report.ok, failures
    return report
