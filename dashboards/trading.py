"""Trading: the app's traffic, latency and errors, and the business it carries."""
from __future__ import annotations

from pitwatch.dashboards import promql, slo, units
from pitwatch.dashboards.common import (
    GREEN, RED, board, board_link, runbook_link, slo_steps, stat, steps, targets, timeseries,
)
from pitwatch.dashboards.promql import or_zero, quantile, rate

LATENCY = "pitwatch_app_http_request_duration_seconds"

dashboard = board("trading", "pitwatch / Trading",
                  "The trading app in depth: requests, latency, errors, trades and positions.", [
    stat("Requests per second", "All requests the app answered.", promql.REQUESTS,
         units.REQUESTS_PER_SECOND),
    stat("API p95 latency", f"SLO: {slo.API_P95.description}.", promql.API_P95, units.SECONDS,
         thresholds=slo_steps(slo.API_P95), links=[runbook_link(slo.API_P95.alert)]),
    stat("5xx ratio", f"SLO: {slo.ERROR_RATIO.description}.", promql.ERROR_RATIO,
         units.PERCENT, thresholds=slo_steps(slo.ERROR_RATIO),
         links=[runbook_link(slo.ERROR_RATIO.alert)]),
    stat("App up", "Whether Prometheus reaches the app's /metrics.", promql.APP_UP,
         units.UP_DOWN, thresholds=steps(RED, (1, GREEN)), graph=False,
         links=[runbook_link("AppDown")]),
    stat("Trades per minute", "Trades processed, all instruments.", promql.TRADES_PER_MINUTE,
         units.OPS_PER_MINUTE),
    stat("Last trade age", "Time since the newest trade in the database; grows while the "
         "market is closed.", promql.LAST_TRADE_AGE, units.AGE,
         links=[runbook_link("NoTradesWhileMarketOpen")]),
    stat("Market open", "CME Globex session state from the exporter's market calendar.",
         "max(pitwatch_market_open)", units.YES_NO, graph=False),
    stat("Release", "The version the app reports (pitwatch_app_build_info).",
         "max by (version) (pitwatch_app_build_info)", units.SHORT, graph=False, text="name",
         links=[board_link("remediation", "Remediation")]),
    timeseries("Requests by status", "Request rate split by HTTP status.",
               targets((rate("pitwatch_app_http_request_total", "status"), "{{status}}")),
               units.REQUESTS_PER_SECOND, stack=True),
    timeseries("Latency quantiles", f"p50, p95 and p99 of request duration over all "
               f"routes; the dashed line is the p95 SLO ({slo.API_P95.description}).",
               targets((quantile(0.5, LATENCY), "p50"), (promql.API_P95, "p95"),
                       (quantile(0.99, LATENCY), "p99")), units.SECONDS,
               thresholds=slo_steps(slo.API_P95), links=[runbook_link(slo.API_P95.alert)]),
    timeseries("p95 latency by route", "95th percentile of request duration per Flask route.",
               targets((quantile(0.95, LATENCY, "url_rule"), "{{url_rule}}")), units.SECONDS,
               thresholds=slo_steps(slo.API_P95)),
    timeseries("5xx ratio", f"Share of 5xx answers; dashed: the SLO "
               f"({slo.ERROR_RATIO.description}).", targets((promql.ERROR_RATIO, "5xx ratio")),
               units.PERCENT, thresholds=slo_steps(slo.ERROR_RATIO),
               links=[runbook_link(slo.ERROR_RATIO.alert)]),
    timeseries("Trades per minute by instrument", "Trades processed per instrument.",
               targets((f"{rate('pitwatch_app_trades_processed_total', 'instrument')} * 60",
                        "{{instrument}}")), units.OPS_PER_MINUTE, stack=True),
    timeseries("Open positions by symbol", "Positions not closed yet (exporter's SQL).",
               targets(("sum by (symbol) (pitwatch_trading_open_positions)", "{{symbol}}")),
               units.SHORT, stack=True),
    timeseries("Positions opened and chart requests", "Per minute: positions opened, chart "
               "requests by timeframe.",
               targets((f"{rate('pitwatch_app_positions_opened_total')} * 60", "positions opened"),
                       (f"{rate('pitwatch_app_chart_requests_total', 'timeframe')} * 60",
                        "charts {{timeframe}}")), units.OPS_PER_MINUTE),
    timeseries("Unhandled exceptions", "Requests that raised an exception in a view, per "
               "second.", targets((or_zero(rate("pitwatch_app_http_request_exceptions_total")),
                                   "exceptions")), units.REQUESTS_PER_SECOND),
])
