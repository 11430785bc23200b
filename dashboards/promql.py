"""PromQL the boards share: the Overview and the board in depth show the same number.

Metric names are the catalogue's (docs/metrics.md). Rates use ``$__rate_interval`` so
that a window always holds at least four scrapes, whatever the zoom.
"""
from __future__ import annotations

RATE = "[$__rate_interval]"


def rate(selector: str, by: str = "") -> str:
    grouping = f" by ({by}) " if by else ""
    return f"sum{grouping}(rate({selector}{RATE}))"


def or_zero(expr: str) -> str:
    """Rare events: no series yet means none happened, which is 0, not "No data"."""
    return f"{expr} or on() vector(0)"


def quantile(q: float, histogram: str, by: str = "") -> str:
    grouping = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, {rate(histogram + '_bucket', grouping)})"


# --- app (job "app") ---------------------------------------------------------------
APP_UP = 'up{job="app"}'
AVAILABILITY = 'avg(avg_over_time(up{job="app"}[$__range]))'
REQUESTS = rate("pitwatch_app_http_request_total")
API_P95 = quantile(0.95, "pitwatch_app_http_request_duration_seconds")
# No 5xx at all is a ratio of 0, not "No data".
ERRORS = rate('pitwatch_app_http_request_total{status=~"5.."}')
ERROR_RATIO = f"({or_zero(ERRORS)}) / {REQUESTS}"
TRADES_PER_MINUTE = f"{rate('pitwatch_app_trades_processed_total')} * 60"

# --- smoke (exporter): the app from outside, instrumented or not ------------------------
SMOKE_AVAILABILITY = "avg(avg_over_time(pitwatch_smoke_success[$__range]))"
SMOKE_LATENCY = "max(pitwatch_smoke_duration_seconds)"

# --- trading (exporter) --------------------------------------------------------------
LAST_TRADE_AGE = "time() - max(pitwatch_trading_last_trade_timestamp_seconds)"

# --- database --------------------------------------------------------------------------
DB_PROBE_P99 = quantile(0.99, "pitwatch_sqlite_probe_query_duration_seconds")

# --- backups ---------------------------------------------------------------------------
SNAPSHOT_AGE = "time() - max(pitwatch_backup_snapshot_last_success_timestamp_seconds)"
REPLICA_AGE = "time() - max(pitwatch_backup_litestream_last_replica_write_timestamp_seconds)"
# The newest of both kinds of backup bounds the data a restore can lose (RPO).
NEWEST_BACKUP_AGE = ('time() - max({__name__=~"'
                     'pitwatch_backup_snapshot_last_success_timestamp_seconds|'
                     'pitwatch_backup_litestream_last_replica_write_timestamp_seconds"})')
RESTORE_TEST_DURATION = "max(pitwatch_backup_restore_test_duration_seconds)"
RESTORE_TEST_OK = "min(pitwatch_backup_restore_test_ok)"

# --- security --------------------------------------------------------------------------
TLS_TIME_LEFT = "min(pitwatch_security_tls_cert_not_after_timestamp_seconds) - time()"

# --- system ----------------------------------------------------------------------------
APP_MEMORY = "max(pitwatch_app_process_resident_memory_bytes)"
VOLUME_FREE_RATIO = "pitwatch_volume_free_bytes / pitwatch_volume_size_bytes"

# --- alerts and remediation -----------------------------------------------------------
# The Watchdog always fires (dead man's switch): it is not a problem to count.
FIRING_ALERTS = or_zero('count(ALERTS{alertstate="firing", alertname!="Watchdog"})')
# Milliseconds for Grafana's "time ago" unit; 0 (shown as "never") before any action.
LAST_REMEDIATION = or_zero("max(pitwatch_remediation_last_action_timestamp_seconds) * 1000")
