"""Remediation: what the receiver was told, what it decided, and what it did."""
from __future__ import annotations

from pitwatch.dashboards import promql, units
from pitwatch.dashboards.common import (
    BLUE, GREEN, NEVER, RED, board, runbook_link, stat, steps, targets, timeseries,
)
from pitwatch.dashboards.promql import or_zero, quantile, rate

PER_MINUTE = " * 60"
FAILED = 'pitwatch_remediation_actions_total{result!="success"}'

dashboard = board("remediation", "pitwatch / Remediation",
                  "The remediator in depth: notifications from Alertmanager, decisions by "
                  "outcome, actions by result and duration, suppressions by reason.", [
    stat("Notifications per minute", "Alertmanager webhook notifications received.",
         or_zero(rate("pitwatch_remediation_notifications_received_total") + PER_MINUTE),
         units.OPS_PER_MINUTE),
    stat("Actions running", "Actions in progress now.",
         "max(pitwatch_remediation_actions_running)", units.SHORT, graph=False),
    stat("Last remediation", "Time since the remediator last finished an action; \"never\" "
         "before the first one.", promql.LAST_REMEDIATION, units.AGE, graph=False, mappings=NEVER,
         thresholds=steps(BLUE)),
    stat("Failed actions per minute", "Actions that ended in failure, timeout or "
         "interruption.", or_zero(rate(FAILED) + PER_MINUTE), units.OPS_PER_MINUTE,
         thresholds=steps(GREEN, (0.001, RED)), links=[runbook_link("RemediationActionFailed")]),
    timeseries("Notifications", "Webhook notifications received per minute.",
               targets((or_zero(rate("pitwatch_remediation_notifications_received_total")
                                + PER_MINUTE), "notifications")), units.OPS_PER_MINUTE),
    timeseries("Decisions by outcome", "Per minute: act, dry_run, suppressed, ignored.",
               targets((or_zero(rate("pitwatch_remediation_decisions_total", "outcome")
                                + PER_MINUTE), "{{outcome}}")), units.OPS_PER_MINUTE,
               stack=True),
    timeseries("Actions by result", "Per minute, per action and result.",
               targets((or_zero(rate("pitwatch_remediation_actions_total", "action, result")
                                + PER_MINUTE), "{{action}} {{result}}")),
               units.OPS_PER_MINUTE, stack=True),
    timeseries("Action duration", "p50 and p95 of action duration, per action.",
               targets((quantile(0.5, "pitwatch_remediation_action_duration_seconds",
                                 "action"), "p50 {{action}}"),
                       (quantile(0.95, "pitwatch_remediation_action_duration_seconds",
                                 "action"), "p95 {{action}}")), units.SECONDS),
    timeseries("Suppressions by reason", "Per minute: duplicate, cooldown, max_runs, "
               "market_hours, locked, redis_unavailable.",
               targets((or_zero(rate("pitwatch_remediation_suppressions_total", "reason")
                                + PER_MINUTE), "{{reason}}")), units.OPS_PER_MINUTE,
               stack=True),
    stat("Last action by type", "Time since each action last finished.",
         targets(("time() - max by (action) (pitwatch_remediation_last_action_timestamp_seconds)",
                  "{{action}}")), units.AGE, graph=False,
         thresholds=steps(BLUE), text="value_and_name", w=12, h=8),
])
