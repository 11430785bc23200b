"""The platform's SLO thresholds, in base units (seconds, bytes, ratios).

The one place the dashboards take their thresholds from. The alert rules in
``alerts/rules/*.yml`` use the same numbers: ``tests/test_dashboards_slo.py`` finds
each rule below by alert name and severity and fails when the two drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Slo:
    alert: str      # the alert rule that fires on this threshold (its runbook anchor too)
    severity: str   # tells a rule's warning and critical variants apart
    metric: str     # the series that rule's expression compares
    value: float    # base units
    bad_when: str   # "above" or "below" the value
    description: str


API_P95 = Slo("AppHighLatency", "warning", "pitwatch_app_http_request_duration_seconds_bucket",
              0.200, "above", "API request latency p95 stays under 200 ms")
ERROR_RATIO = Slo("AppHighErrorRate", "critical", "pitwatch_app_http_request_total", 0.05, "above",
                  "at most 5 % of API requests answer 5xx")
DB_PROBE_P99 = Slo("DatabaseProbeQuerySlow", "warning",
                   "pitwatch_sqlite_probe_query_duration_seconds_bucket", 0.050, "above",
                   "the database probe query p99 stays under 50 ms")
BACKUP_AGE = Slo("BackupSnapshotTooOld", "critical",
                 "pitwatch_backup_snapshot_last_success_timestamp_seconds", 3600, "above",
                 "RPO: the newest backup is at most 1 h old")
RESTORE_DURATION = Slo("BackupRestoreTestSlow", "warning",
                       "pitwatch_backup_restore_test_duration_seconds", 300, "above",
                       "RTO: the restore test finishes within 5 min")
APP_MEMORY = Slo("AppMemoryHigh", "warning", "pitwatch_app_process_resident_memory_bytes", 1e9,
                 "above", "the app process stays under 1 GB resident memory")
TLS_WARNING = Slo("TLSCertificateExpiring", "warning",
                  "pitwatch_security_tls_cert_not_after_timestamp_seconds", 21 * 86400, "below",
                  "a certificate expiring within 21 days warns")
TLS_CRITICAL = Slo("TLSCertificateExpiring", "critical",
                   "pitwatch_security_tls_cert_not_after_timestamp_seconds", 7 * 86400, "below",
                   "a certificate expiring within 7 days pages")
VOLUME_FREE_WARNING = Slo("DatabaseVolumeLowSpace", "warning", "pitwatch_volume_free_bytes",
                          0.10, "below", "under 10 % free space on a volume warns")
VOLUME_FREE_CRITICAL = Slo("DatabaseVolumeLowSpace", "critical", "pitwatch_volume_free_bytes",
                           0.05, "below", "under 5 % free space on a volume pages")
# The smoke requests' median against the API p95 target (AppSmokeSlow).
SMOKE_LATENCY = Slo("AppSmokeSlow", "warning", "pitwatch_smoke_duration_seconds", 0.200,
                    "above", "smoke requests stay under the 200 ms API p95 SLO")

ALL = (API_P95, ERROR_RATIO, DB_PROBE_P99, BACKUP_AGE, RESTORE_DURATION, APP_MEMORY,
       TLS_WARNING, TLS_CRITICAL, VOLUME_FREE_WARNING, VOLUME_FREE_CRITICAL, SMOKE_LATENCY)
