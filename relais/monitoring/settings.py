"""Monitoring settings: where alerts go, thresholds and how long a condition must last.

Production defaults here; an inventory overrides them with a ``monitoring:``
section of hosting.yaml (schema: :class:`MonitoringSettings`, documented in
docs/monitoring.md). The lab uses short durations so that tests stay quick.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from relais.errors import RelaisError
from relais.plan import Plan

Duration = Annotated[str, Field(pattern=r"^([0-9]+(ms|s|m|h|d|w|y))+$")]
"""A Prometheus duration: 30s, 5m, 1h30m, 2d."""

SETTINGS_ENV = "RELAIS_MONITORING_SETTINGS"


class MonitoringSettingsError(RelaisError):
    """The monitoring settings cannot be read."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class SmtpSettings(_Section):
    """The syndicate's SMTP relay, as Alertmanager reaches it from the monitor host."""

    host: str = Field(default="localhost", description="Relay host (default: the monitor host's own MTA)")
    port: int = Field(default=25, ge=1, le=65535)
    sender: str | None = Field(default=None, alias="from",
                               description="From address (default: alertes@<syndicate domain>)")
    to: list[str] = Field(default_factory=list, description="Recipients (default: the syndicate's contact)")
    starttls: bool = Field(default=True, description="Require STARTTLS to the relay")
    username: str | None = None
    password_secret: str | None = Field(default=None,
                                        description="Secret reference of the relay password, if any")


class Thresholds(_Section):
    disk_used_percent: float = Field(default=85, gt=0, lt=100)
    memory_available_percent: float = Field(default=10, gt=0, lt=100,
                                            description="Memory pressure below this much available")
    certificate_days: float = Field(default=21, gt=0)
    backup_age_hours: float = Field(default=26, gt=0)


class ForDurations(_Section):
    """How long a condition must hold before its alert fires."""

    host_down: Duration = "5m"
    disk: Duration = "30m"
    memory: Duration = "15m"
    certificate: Duration = "1h"
    backup: Duration = "10m"
    endpoint_down: Duration = "5m"
    service_down: Duration = "5m"
    federation: Duration = "15m"
    monitoring: Duration = "5m"


class Intervals(_Section):
    scrape: Duration = "30s"
    evaluation: Duration = "30s"
    probe_timeout: Duration = "10s"


class Notifications(_Section):
    """Alertmanager grouping: first notice after group_wait, repeats while still firing."""

    group_wait: Duration = "30s"
    group_interval: Duration = "5m"
    repeat_interval: Duration = "4h"
    resolve_timeout: Duration = "5m"


class MonitoringSettings(_Section):
    smtp: SmtpSettings = SmtpSettings()
    webhook: str | None = Field(default=None, description="Optional URL receiving every alert as JSON")
    thresholds: Thresholds = Thresholds()
    for_: ForDurations = Field(default=ForDurations(), alias="for")
    intervals: Intervals = Intervals()
    notifications: Notifications = Notifications()
    retention: Duration = Field(default="30d", description="How long Prometheus keeps its data")

    def scrape_timeout(self) -> str:
        """The probe timeout, capped by the scrape interval (Prometheus requires it)."""
        timeout, interval = self.intervals.probe_timeout, self.intervals.scrape
        return timeout if seconds(timeout) <= seconds(interval) else interval

    def sender(self, plan: Plan) -> str:
        return self.smtp.sender or f"alertes@{plan.syndicate.domain}"

    def recipients(self, plan: Plan) -> list[str]:
        return list(self.smtp.to) or [plan.syndicate.contact]


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: str) -> float:
    """A Prometheus duration in seconds."""
    return sum(int(n) * _UNITS[u] for n, u in re.findall(r"([0-9]+)(ms|s|m|h|d|w|y)", duration))


def settings_for(plan: Plan) -> MonitoringSettings:
    """The monitoring settings of this Plan.

    Until the Plan carries the inventory's ``monitoring:`` section, the defaults
    apply, overridden by the YAML file named by ``RELAIS_MONITORING_SETTINGS``
    (the lab tests use it for short durations).
    """
    path = os.environ.get(SETTINGS_ENV)
    if path:  # an explicit override (tests, trials) wins over the inventory
        return load_settings(Path(path))
    return MonitoringSettings.model_validate(plan.monitoring)


def load_settings(path: Path) -> MonitoringSettings:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MonitoringSettingsError(f"{path}: cannot read monitoring settings: {exc}") from exc
    if isinstance(data, dict) and "monitoring" in data:
        data = data["monitoring"]
    try:
        return MonitoringSettings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise MonitoringSettingsError(f"{path}: monitoring.{where}: {first['msg']}",
                                      hint="see docs/monitoring.md for the settings") from exc
