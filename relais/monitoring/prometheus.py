"""prometheus.yml of a monitor host, generated from the Plan."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from relais.firewall import ALERTMANAGER
from relais.monitoring.settings import MonitoringSettings
from relais.monitoring.targets import (
    BLACKBOX,
    JOB_PROBE,
    ScrapeTarget,
    probe_targets,
    reach,
    scrape_targets,
)
from relais.plan import Plan, PlannedHost

RULES_FILE = "/etc/prometheus/relais-rules.yml"


def _static(targets: list[ScrapeTarget]) -> list[dict[str, Any]]:
    return [{"targets": [t.address], "labels": dict(sorted(t.labels.items()))} for t in targets]


def prometheus_config(plan: Plan, monitor: PlannedHost, settings: MonitoringSettings,
                      rules_path: str = RULES_FILE) -> dict[str, Any]:
    by_job: dict[tuple[str, str], list[ScrapeTarget]] = defaultdict(list)
    for target in scrape_targets(plan, monitor):
        by_job[(target.job, target.metrics_path)].append(target)
    jobs: list[dict[str, Any]] = []
    for (job, path), targets in sorted(by_job.items()):
        jobs.append({"job_name": job, "metrics_path": path, "static_configs": _static(targets)})

    probes = probe_targets(plan)
    if probes:
        jobs.append({
            "job_name": JOB_PROBE,
            "metrics_path": "/probe",
            "static_configs": [{"targets": [p.target], "labels": {"module": p.module, **p.labels}}
                               for p in probes],
            "relabel_configs": [
                {"source_labels": ["__address__"], "target_label": "__param_target"},
                {"source_labels": ["module"], "target_label": "__param_module"},
                {"source_labels": ["__param_target"], "target_label": "instance"},
                {"target_label": "__address__", "replacement": f"127.0.0.1:{BLACKBOX}"},
            ],
        })
    return {
        "global": {
            "scrape_interval": settings.intervals.scrape,
            "evaluation_interval": settings.intervals.evaluation,
            "scrape_timeout": settings.scrape_timeout(),
            "external_labels": {"syndicate": plan.syndicate.domain, "monitor": monitor.name},
        },
        "rule_files": [rules_path],
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [f"{reach(monitor)}:{ALERTMANAGER}"]}]}]},
        "scrape_configs": jobs,
    }
