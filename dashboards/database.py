"""Database: the SQLite file's latency, size, integrity and errors, and Redis."""
from __future__ import annotations

from pitwatch.dashboards import promql, slo, units
from pitwatch.dashboards.common import (
    GREEN, RED, board, runbook_link, slo_steps, stat, steps, targets, timeseries,
)
from pitwatch.dashboards.promql import or_zero, quantile, rate

PROBE = "pitwatch_sqlite_probe_query_duration_seconds"
APP_QUERY = "pitwatch_app_db_query_duration_seconds"
OK = steps(RED, (1, GREEN))

dashboard = board("database", "pitwatch / Database",
                  "The trading database (SQLite) and Redis in depth.", [
    stat("DB query p99", f"99th percentile of the app's own queries over 5 minutes, or of "
         f"the exporter's probe query when the app runs none; the name under the number says "
         f"which. SLO: {slo.DB_PROBE_P99.description}.",
         targets((promql.DB_QUERY_P99, "{{source}}")), units.SECONDS,
         thresholds=slo_steps(slo.DB_PROBE_P99), links=[runbook_link(slo.DB_PROBE_P99.alert)],
         text="value_and_name", w=4),
    stat("Integrity", "Result of the latest PRAGMA quick_check and integrity_check, run in "
         "the background.", targets(("min by (check) (pitwatch_sqlite_integrity_check_ok)",
                                     "{{check}}")),
         units.YES_NO, thresholds=OK, graph=False, text="value_and_name",
         w=4, links=[runbook_link("DatabaseIntegrityCheckFailed")]),
    stat("Integrity check age", "Time since each check last finished.",
         targets(("time() - max by (check) (pitwatch_sqlite_integrity_check_timestamp_seconds)",
                  "{{check}}")), units.AGE, graph=False, text="value_and_name", w=4,
         links=[runbook_link("DatabaseIntegrityCheckStale")]),
    stat("Database size", "Size of the main database file.", "max(pitwatch_sqlite_size_bytes)",
         units.BYTES, w=4),
    stat("Redis up", "Whether the exporter reaches Redis.", "min(pitwatch_redis_up)",
         units.UP_DOWN, thresholds=OK, graph=False, w=4,
         links=[runbook_link("RedisDown")]),
    stat("Redis memory", "Memory Redis reports as used.", "max(pitwatch_redis_used_memory_bytes)",
         units.BYTES, w=4),
    timeseries("Probe query latency", f"p50 and p99 of the exporter's probe query; dashed: "
               f"the SLO ({slo.DB_PROBE_P99.description}).",
               targets((quantile(0.5, PROBE), "p50"), (promql.DB_PROBE_P99, "p99")),
               units.SECONDS, thresholds=slo_steps(slo.DB_PROBE_P99),
               links=[runbook_link(slo.DB_PROBE_P99.alert)]),
    timeseries("App query latency", "p50 and p99 of the queries the app itself runs.",
               targets((quantile(0.5, APP_QUERY), "p50"), (quantile(0.99, APP_QUERY), "p99")),
               units.SECONDS, thresholds=slo_steps(slo.DB_PROBE_P99)),
    timeseries("File sizes", "Main file, write-ahead log and free pages. A WAL that keeps "
               "growing means checkpoints are blocked (a long reader, or Litestream stopped).",
               targets(("max(pitwatch_sqlite_size_bytes)", "database"),
                       ("max(pitwatch_sqlite_wal_size_bytes)", "wal"),
                       ("max(pitwatch_sqlite_freelist_bytes)", "freelist")), units.BYTES),
    timeseries("App database errors", "Errors the app met talking to the database, per "
               "second, by kind (corruption, locked, other).",
               targets((or_zero(rate("pitwatch_app_db_errors_total", "kind")), "{{kind}}")),
               units.OPS_PER_SECOND, links=[runbook_link("AppDatabaseErrors")]),
    timeseries("Integrity check duration", "How long each background check took.",
               targets(("max by (check) (pitwatch_sqlite_integrity_check_duration_seconds)",
                        "{{check}}")), units.SECONDS),
    timeseries("Redis ping", "Round trip of a PING to Redis.",
               targets(("max(pitwatch_redis_ping_duration_seconds)", "ping")), units.SECONDS),
])
