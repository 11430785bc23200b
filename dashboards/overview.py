"""Overview: the platform on one screen, each number against its SLO."""
from __future__ import annotations

from pitwatch.dashboards import promql, slo, units
from pitwatch.dashboards.common import (
    BLUE, GREEN, NEVER, ORANGE, RED, board, board_link, runbook_link, slo_steps, stat, steps,
    table, targets, timeseries,
)

# Every firing alert but the Watchdog (always firing on purpose); one "None firing" row
# when there is none, so the table says so instead of "No data".
INCIDENTS = ('sort_desc(ALERTS{alertstate="firing", alertname!="Watchdog"}) or on() '
             'label_replace(vector(0), "alertname", "None firing", "", "")')

dashboard = board("overview", "pitwatch / Overview",
                  "The trading platform on one screen, each number against its SLO.", [
    stat("Availability", "Share of the app's requests in the last hour answered without a "
         "5xx (the availability SLI, 1 - slo:sli_error:ratio_rate1h); the worst job when "
         "several are shown.", promql.AVAILABILITY, units.PERCENT,
         thresholds=steps(RED, (0.99, ORANGE), (0.999, GREEN)),
         links=[board_link("budgets", "SLO"), board_link("trading", "Trading")]),
    stat("Smoke availability", "Share of the exporter's smoke requests (smoke.urls, default "
         "the app's health URL) in the time range that got an expected answer: availability "
         "as a user's client sees it, also for an app without metrics of its own.",
         promql.SMOKE_AVAILABILITY, units.PERCENT,
         thresholds=steps(RED, (0.99, ORANGE), (0.999, GREEN)),
         links=[runbook_link("AppSmokeFailing")]),
    stat("Smoke latency", f"Slowest of the latest smoke requests, body included. "
         f"SLO: {slo.SMOKE_LATENCY.description}.", promql.SMOKE_LATENCY, units.SECONDS,
         thresholds=slo_steps(slo.SMOKE_LATENCY), links=[runbook_link(slo.SMOKE_LATENCY.alert)]),
    stat("API p95 latency", f"95th percentile of request duration over all routes. "
         f"SLO: {slo.API_P95.description}.", promql.API_P95, units.SECONDS,
         thresholds=slo_steps(slo.API_P95),
         links=[board_link("trading", "Trading"), runbook_link(slo.API_P95.alert)]),
    stat("5xx ratio", f"Share of requests answered with a 5xx status. "
         f"SLO: {slo.ERROR_RATIO.description}.", promql.ERROR_RATIO, units.PERCENT,
         thresholds=slo_steps(slo.ERROR_RATIO),
         links=[board_link("trading", "Trading"), runbook_link(slo.ERROR_RATIO.alert)]),
    stat("Trades per minute", "Trades processed by the app, all instruments.",
         promql.TRADES_PER_MINUTE, units.OPS_PER_MINUTE,
         links=[board_link("trading", "Trading")]),
    stat("Last trade age", "Time since the newest trade in the database (exporter's SQL). "
         "Expected to grow while the market is closed.", promql.LAST_TRADE_AGE, units.AGE,
         links=[board_link("trading", "Trading"), runbook_link("NoTradesWhileMarketOpen")]),
    stat("DB query p99", f"99th percentile of the app's own database queries over 5 minutes; "
         f"the exporter's probe query when the app runs none (not instrumented, idle). The "
         f"name under the number says which. SLO: {slo.DB_PROBE_P99.description}.",
         targets((promql.DB_QUERY_P99, "{{source}}")), units.SECONDS,
         thresholds=slo_steps(slo.DB_PROBE_P99), text="value_and_name",
         links=[board_link("database", "Database"), runbook_link(slo.DB_PROBE_P99.alert)]),
    stat("Newest backup age", f"Age of the newest backup, snapshot or Litestream replica "
         f"write. SLO: {slo.BACKUP_AGE.description}.", promql.NEWEST_BACKUP_AGE,
         units.AGE, thresholds=slo_steps(slo.BACKUP_AGE),
         links=[board_link("backups", "Backups"), runbook_link(slo.BACKUP_AGE.alert)]),
    stat("Restore test duration", f"How long the latest real restore of the newest backup "
         f"into a temp file plus integrity check took. "
         f"SLO: {slo.RESTORE_DURATION.description}.",
         promql.RESTORE_TEST_DURATION, units.SECONDS,
         thresholds=slo_steps(slo.RESTORE_DURATION),
         links=[board_link("backups", "Backups"), runbook_link(slo.RESTORE_DURATION.alert)]),
    stat("TLS time left", f"Time until the first certificate (file or endpoint) expires. "
         f"{slo.TLS_WARNING.description}; {slo.TLS_CRITICAL.description}.",
         promql.TLS_TIME_LEFT, units.AGE, graph=False,
         thresholds=slo_steps(slo.TLS_WARNING, slo.TLS_CRITICAL),
         links=[board_link("security", "Security"), runbook_link(slo.TLS_WARNING.alert)]),
    stat("Firing alerts", "Alerts firing now, the Watchdog (always firing on purpose) "
         "excluded.", promql.FIRING_ALERTS, units.SHORT, thresholds=steps(GREEN, (1, RED)),
         links=[board_link("remediation", "Remediation")]),
    stat("Last remediation", "Time since the remediator last finished an action (rollback, "
         "restore, restart); \"never\" before the first one.", promql.LAST_REMEDIATION,
         units.AGE, graph=False, mappings=NEVER, thresholds=steps(BLUE),
         links=[board_link("remediation", "Remediation")]),
    stat("App memory", f"Resident memory of the app process. "
         f"SLO: {slo.APP_MEMORY.description}.", promql.APP_MEMORY, units.BYTES,
         thresholds=slo_steps(slo.APP_MEMORY),
         links=[board_link("system", "System"), runbook_link(slo.APP_MEMORY.alert)]),
    table("Current incidents", "Alerts firing now, the Watchdog excluded: what the pages "
          "and mails of the moment are about (the board's Runbook link says what to do about "
          "each). The Remediation board shows what the remediator does about them.",
          INCIDENTS, ["alertname", "severity", "job", "instance", "remediation"],
          links=[board_link("remediation", "Remediation")], w=12),
    timeseries("API p95 latency against the SLO", f"95th percentile of request duration; the "
               f"dashed line is the SLO ({slo.API_P95.description}).",
               targets((promql.API_P95, "p95")), units.SECONDS,
               thresholds=slo_steps(slo.API_P95), links=[runbook_link(slo.API_P95.alert)]),
    timeseries("Smoke requests", f"Duration of each smoke URL's requests; the dashed line is "
               f"the SLO ({slo.SMOKE_LATENCY.description}). A failed request shows as a gap "
               f"in availability above and usually as its timeout here.",
               targets(("max by (url) (pitwatch_smoke_duration_seconds)", "{{url}}")),
               units.SECONDS, thresholds=slo_steps(slo.SMOKE_LATENCY),
               links=[runbook_link(slo.SMOKE_LATENCY.alert), runbook_link("AppSmokeFailing")]),
    timeseries("5xx ratio against the SLO", f"Share of 5xx answers; the dashed line is the "
               f"SLO ({slo.ERROR_RATIO.description}).",
               targets((promql.ERROR_RATIO, "5xx ratio")), units.PERCENT,
               thresholds=slo_steps(slo.ERROR_RATIO),
               links=[runbook_link(slo.ERROR_RATIO.alert)]),
])
