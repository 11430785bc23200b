"""Events every board marks on its time axis, from Prometheus: what happened when.

Critical alerts firing, remediation runs and release changes: a spike next to one of
them explains itself. Unlike the panels, the marks ignore the job and instance
filters: a release of the app or a page about the database is what a person narrowed
to another job needs to see too.
"""
from __future__ import annotations

from pitwatch.dashboards.variables import DATASOURCE

# Grafana evaluates an annotation query once per step and joins hits at most a step
# apart into one region.
STEP = "1m"
CRITICAL = 'ALERTS{alertstate="firing", severity="critical"}'
# The gauge holds when each action last finished: every new value is a run. Its value
# (in ms) is the mark's time, so a run shows at its second, and a run since the
# remediator started counts too (changes() would miss a series' first value).
REMEDIATIONS = "max by (action) (pitwatch_remediation_last_action_timestamp_seconds) * 1000"
# A version served now that was not served in the ten minutes before: a deploy or a
# rollback. A restart of the same version (a gap in the series) is not a release.
RELEASE = "pitwatch_app_build_info"
RELEASES = (f"count by (version) ({RELEASE}) "
            f"unless count by (version) (max_over_time({RELEASE}[10m] offset {STEP}))")


def _query(name: str, expr: str, colour: str, title: str, text: str, tags: str,
           value_is_time: bool = False) -> dict:
    return {"name": name, "datasource": DATASOURCE, "enable": True, "hide": False,
            "iconColor": colour, "expr": expr, "step": STEP, "titleFormat": title,
            "textFormat": text, "tagKeys": tags, "useValueForTime": value_is_time}


def annotations() -> list[dict]:
    return [
        _query("Critical alerts", CRITICAL, "red", "{{alertname}}",
               "{{job}} {{instance}}", "alertname,severity"),
        _query("Remediation runs", REMEDIATIONS, "orange", "Remediation: {{action}}",
               "The remediator finished a {{action}}", "action", value_is_time=True),
        _query("Releases", RELEASES, "blue", "Release {{version}}",
               "The app now serves {{version}}", "version"),
    ]
