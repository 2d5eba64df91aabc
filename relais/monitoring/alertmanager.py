"""alertmanager.yml of a monitor host: every alert to the syndicate's e-mail, and to the
optional webhook. E-mails are written in French first, then in English."""

from __future__ import annotations

from typing import Any

from relais.monitoring.settings import MonitoringSettings
from relais.plan import Plan

EMAIL = "syndicate-email"
WEBHOOK = "syndicate-webhook"

SUBJECT = ('[{{ .Status | toUpper }}{{ if eq .Status "firing" }} {{ .Alerts.Firing | len }}{{ end }}] '
           "Relais : {{ .CommonLabels.alertname }}"
           "{{ if .CommonLabels.host }} — {{ .CommonLabels.host }}{{ end }}"
           "{{ if .CommonLabels.tenant }} — commune {{ .CommonLabels.tenant }}{{ end }}")

BODY = """{{ range .Alerts }}{{ if eq .Status "firing" }}EN COURS{{ else }}RÉSOLUE{{ end }} : {{ .Annotations.summary_fr }}
{{ .Annotations.description_fr }}
Depuis : {{ .StartsAt.Format "2006-01-02 15:04:05 MST" }}

{{ if eq .Status "firing" }}FIRING{{ else }}RESOLVED{{ end }}: {{ .Annotations.summary_en }}
{{ .Annotations.description_en }}
Labels: {{ range .Labels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}
----
{{ end }}"""  # noqa: E501


def alertmanager_config(plan: Plan, settings: MonitoringSettings,
                        smtp_password: str | None) -> dict[str, Any]:
    smtp = settings.smtp
    global_: dict[str, Any] = {
        "resolve_timeout": settings.notifications.resolve_timeout,
        "smtp_smarthost": f"{smtp.host}:{smtp.port}",
        "smtp_from": settings.sender(plan),
        "smtp_require_tls": smtp.starttls,
        "smtp_hello": "relais-alertmanager",
    }
    if smtp.username:
        global_["smtp_auth_username"] = smtp.username
    if smtp_password:
        global_["smtp_auth_password"] = smtp_password
    receivers: list[dict[str, Any]] = [{
        "name": EMAIL,
        "email_configs": [{"to": ", ".join(settings.recipients(plan)), "send_resolved": True,
                           "headers": {"Subject": SUBJECT}, "text": BODY, "html": ""}],
    }]
    routes: list[dict[str, Any]] = []
    if settings.webhook:
        receivers.append({"name": WEBHOOK, "webhook_configs": [{"url": settings.webhook,
                                                                "send_resolved": True}]})
        # Matches everything, then goes on to the e-mail (the root receiver).
        routes.append({"receiver": WEBHOOK, "continue": True})
    notifications = settings.notifications
    route: dict[str, Any] = {
        "receiver": EMAIL,
        "group_by": ["alertname", "host", "tenant"],
        "group_wait": notifications.group_wait,
        "group_interval": notifications.group_interval,
        "repeat_interval": notifications.repeat_interval,
    }
    if routes:
        route["routes"] = [*routes, {"receiver": EMAIL}]
    return {"global": global_, "route": route, "receivers": receivers}
