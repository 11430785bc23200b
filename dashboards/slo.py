"""The boards' view of the SLO specification (:mod:`pitwatch.core.slo`).

The shipped boards draw the stated targets: the thresholds of the default spec, by the
names the board modules use. Each carries the alert that fires on it (its runbook
anchor too), its severity, the metric and the value in base units (seconds, bytes,
ratios). ``tests/test_slo_drift.py`` checks that each is drawn on a board and that the
alert rules use the same value.
"""
from __future__ import annotations

from pitwatch.core.slo import Threshold as Slo
from pitwatch.core.slo import spec

SPEC = spec()

API_P95 = SPEC.API_P95
ERROR_RATIO = SPEC.ERROR_RATIO
DB_PROBE_P99 = SPEC.DB_PROBE_P99
BACKUP_AGE = SPEC.BACKUP_AGE
RESTORE_DURATION = SPEC.RESTORE_DURATION
APP_MEMORY = SPEC.APP_MEMORY
TLS_WARNING = SPEC.TLS_WARNING
TLS_CRITICAL = SPEC.TLS_CRITICAL
VOLUME_FREE_WARNING = SPEC.VOLUME_FREE_WARNING
VOLUME_FREE_CRITICAL = SPEC.VOLUME_FREE_CRITICAL
SMOKE_LATENCY = SPEC.SMOKE_LATENCY

# The thresholds drawn on a board (the others are pitwatch check's, or have no panel).
ALL = (API_P95, ERROR_RATIO, DB_PROBE_P99, BACKUP_AGE, RESTORE_DURATION, APP_MEMORY,
       TLS_WARNING, TLS_CRITICAL, VOLUME_FREE_WARNING, VOLUME_FREE_CRITICAL, SMOKE_LATENCY)
OBJECTIVES = SPEC.objectives

