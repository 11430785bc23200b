"""Backups: snapshots, Litestream replication, and the restore test that proves them."""
from __future__ import annotations

from pitwatch.dashboards import promql, slo, units
from pitwatch.dashboards.common import (
    GREEN, RED, board, runbook_link, slo_steps, stat, steps, targets, timeseries,
)
from pitwatch.dashboards.promql import or_zero, rate

RPO = slo_steps(slo.BACKUP_AGE)
RTO = slo_steps(slo.RESTORE_DURATION)

dashboard = board("backups", "pitwatch / Backups",
                  "Backups in depth: snapshot and replica ages against the RPO, the periodic "
                  "restore test against the RTO.", [
    stat("Newest backup age", f"Newest of snapshot and Litestream replica write. "
         f"SLO: {slo.BACKUP_AGE.description}.", promql.NEWEST_BACKUP_AGE, units.AGE,
         thresholds=RPO, links=[runbook_link(slo.BACKUP_AGE.alert)]),
    stat("Snapshot age", "Time since the last successful snapshot.", promql.SNAPSHOT_AGE,
         units.AGE, thresholds=RPO),
    stat("Replica write age", "Time since Litestream last wrote to its replica.",
         promql.REPLICA_AGE, units.AGE, thresholds=RPO,
         links=[runbook_link("LitestreamNotSyncing")]),
    stat("Restore test", "Whether the latest restore of the newest backup passed its "
         "integrity check.", promql.RESTORE_TEST_OK, units.YES_NO,
         thresholds=steps(RED, (1, GREEN)), graph=False,
         links=[runbook_link("BackupRestoreTestFailed")]),
    stat("Restore test duration", f"SLO: {slo.RESTORE_DURATION.description}.",
         promql.RESTORE_TEST_DURATION, units.SECONDS, thresholds=RTO,
         links=[runbook_link(slo.RESTORE_DURATION.alert)]),
    stat("Restore test age", "Time since the restore test last ran.", promql.RESTORE_TEST_AGE,
         units.AGE, links=[runbook_link("BackupRestoreTestStale")]),
    stat("Snapshots retained", "Snapshots kept by the retention policy.",
         "max(pitwatch_backup_snapshots_retained)", units.SHORT),
    stat("Last snapshot size", "Size of the newest snapshot.",
         "max(pitwatch_backup_snapshot_last_size_bytes)", units.BYTES),
    timeseries("Backup age against the RPO", f"Dashed: the RPO ({slo.BACKUP_AGE.description}).",
               targets((promql.SNAPSHOT_AGE, "snapshot"), (promql.REPLICA_AGE, "replica")),
               units.AGE, thresholds=RPO, links=[runbook_link(slo.BACKUP_AGE.alert)]),
    timeseries("Restore test duration against the RTO",
               f"Dashed: the RTO ({slo.RESTORE_DURATION.description}).",
               targets((promql.RESTORE_TEST_DURATION, "restore test")), units.SECONDS,
               thresholds=RTO, links=[runbook_link(slo.RESTORE_DURATION.alert)]),
    timeseries("Litestream syncs", "WAL syncs per second Litestream performed, and sync "
               "errors.", targets((rate("litestream_sync_count"), "syncs"),
                                  (or_zero(rate("litestream_sync_error_count")), "errors")),
               units.OPS_PER_SECOND, links=[runbook_link("LitestreamSyncErrors")]),
    timeseries("Litestream database and WAL", "Sizes as Litestream sees them.",
               targets(("max(litestream_db_size)", "database"),
                       ("max(litestream_wal_size)", "wal")), units.BYTES),
])
