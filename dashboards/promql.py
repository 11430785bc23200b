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


def age(timestamps: str) -> str:
    """Seconds since the newest of ``timestamps``: an age, shown with units.AGE."""
    return f"time() - max({timestamps})"


def quantile(q: float, histogram: str, by: str = "") -> str:
    grouping = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, {rate(histogram + '_bucket', grouping)})"


# --- app (job "app") ---------------------------------------------------------------
APP_UP = 'up{job="app"}'
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
LAST_TRADE_AGE = age("pitwatch_trading_last_trade_timestamp_seconds")

# --- database --------------------------------------------------------------------------
DB_PROBE_P99 = quantile(0.99, "pitwatch_sqlite_probe_query_duration_seconds")
# The DB query SLI (alerts/rules/slo.yml): the app's queries, else the probe; `source` says which.
DB_QUERY_P99 = "max by (source) (slo:db_query_duration_seconds:p99_rate5m)"

# --- backups ---------------------------------------------------------------------------
SNAPSHOT_AGE = age("pitwatch_backup_snapshot_last_success_timestamp_seconds")
REPLICA_AGE = age("pitwatch_backup_litestream_last_replica_write_timestamp_seconds")
# The newest of both kinds of backup bounds the data a restore can lose (RPO).
NEWEST_BACKUP_AGE = age('{__name__=~"'
                        'pitwatch_backup_snapshot_last_success_timestamp_seconds|'
                        'pitwatch_backup_litestream_last_replica_write_timestamp_seconds"}')
# How long the latest restore test took (RTO), and how long ago it ran.
RESTORE_TEST_DURATION = "max(pitwatch_backup_restore_test_duration_seconds)"
RESTORE_TEST_AGE = age("pitwatch_backup_restore_test_timestamp_seconds")
RESTORE_TEST_OK = "min(pitwatch_backup_restore_test_ok)"

# --- security --------------------------------------------------------------------------
TLS_TIME_LEFT = "min(pitwatch_security_tls_cert_not_after_timestamp_seconds) - time()"

# --- system ----------------------------------------------------------------------------
APP_MEMORY = "max(pitwatch_app_process_resident_memory_bytes)"
VOLUME_FREE_RATIO = "pitwatch_volume_free_bytes / pitwatch_volume_size_bytes"

# --- alerts and remediation -----------------------------------------------------------
# The Watchdog always fires (dead man's switch): it is not a problem to count.
FIRING_ALERTS = or_zero('count(ALERTS{alertstate="firing", alertname!="Watchdog"})')
# -1 (shown as "never", common.NEVER) before the first action.
LAST_REMEDIATION = f"{age('pitwatch_remediation_last_action_timestamp_seconds')} or on() vector(-1)"

# --- SLOs: recording rules of alerts/rules/slo.yml, labels `slo` and `job` ------------------
SLOS = ("availability", "latency")


def sli_error(slo: str, window: str) -> str:
    """Share of bad events of ``slo`` over ``window`` (5m, 30m, 1h, 2h, 6h, 1d, 3d, 30d)."""
    return f'slo:sli_error:ratio_rate{window}{{slo="{slo}"}}'


def budget_remaining(slo: str) -> str:
    """Share of the 30-day error budget left (below 0: overspent)."""
    return f'slo:error_budget_remaining:ratio{{slo="{slo}"}}'


def burn_rate(slo: str) -> str:
    """How many times faster than sustainable the budget burned over the last hour."""
    return f'slo:burn_rate:ratio_rate1h{{slo="{slo}"}}'


# Availability as users met it: the share of requests served without a 5xx, over an
# hour (the burn-rate window); `up` says nothing about failed requests.
AVAILABILITY = f"1 - max({sli_error('availability', '1h')})"
