"""The backup collector: snapshot freshness, a real Litestream replica, restore tests."""
from __future__ import annotations

import os
import sqlite3
import time

import yaml

from pitwatch.exporters.backup import BackupCollector
from pitwatch.core import backups
from pitwatch.core.procs import Child, free_port
from support.fixtures import make_db, samples, success, value
from support.waiting import EVENTUALLY, wait_until


def test_snapshots_and_restore_test(tmp_path):
    db = make_db(tmp_path / "trading.db")
    snaps = tmp_path / "snaps"
    backups.snapshot(db, snaps, now=time.time() - 7200)
    newest = backups.snapshot(db, snaps)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    col = BackupCollector(db, snaps, scratch_dir=scratch)
    got = samples(col)
    assert success(got, "backup") == 1
    assert value(got, "pitwatch_backup_snapshots_retained") == 2
    assert value(got, "pitwatch_backup_snapshot_last_success_timestamp_seconds") == newest.created
    assert value(got, "pitwatch_backup_snapshot_last_size_bytes") == newest.size_bytes
    col.checks()[0].run_once()
    got = samples(col)
    assert value(got, "pitwatch_backup_restore_test_ok") == 1
    assert value(got, "pitwatch_backup_restore_test_duration_seconds") > 0
    assert not list(scratch.iterdir())  # the temp copy is gone
    assert {p.name for p in tmp_path.iterdir()} <= {  # and nothing beside the database
        "scratch", "snaps", "trading.db", "trading.db-shm", "trading.db-wal"}
    # Damage the newest snapshot: the restore test must say so.
    with open(newest.path, "r+b") as fh:
        fh.seek(8192)
        fh.write(b"\0" * 4096)
    col.checks()[0].run_once()
    got = samples(col)
    assert value(got, "pitwatch_backup_restore_test_ok") == 0
    assert "sha256" in col.details()["restore_test"]


def test_restore_test_removes_stale_leftovers_only(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=10)
    backups.snapshot(db, tmp_path / "snaps")
    scratch = tmp_path / "scratch"
    stale, fresh = scratch / ".pitwatch-restore-test-old", scratch / ".pitwatch-restore-test-busy"
    other = scratch / ".pitwatch-verify-old"  # not the restore test's
    for folder in (stale, fresh, other):
        folder.mkdir(parents=True)
        (folder / "restored.db").write_bytes(b"x" * 1000)
    for folder in (stale, other):
        os.utime(folder, (time.time() - 7200, time.time() - 7200))
    col = BackupCollector(db, tmp_path / "snaps", scratch_dir=scratch)
    col.checks()[0].run_once()
    assert value(samples(col), "pitwatch_backup_restore_test_ok") == 1
    assert not stale.exists() and fresh.exists()  # a running test's folder is left alone
    assert other.exists()


def test_missing_snapshots_folder_is_a_failure(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=10)
    col = BackupCollector(db, tmp_path / "no-such-folder")
    col.checks()[0].run_once()
    got = samples(col)
    assert success(got, "backup") == 0
    # The folder problem is the collector's failure; there is no backup to test.
    assert value(got, "pitwatch_backup_restore_test_ok") is None


def test_litestream_replica_and_restore(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=100)
    replica = tmp_path / "replica"
    config = tmp_path / "litestream.yml"
    config.write_text(yaml.safe_dump({
        "addr": f"127.0.0.1:{free_port()}",
        "dbs": [{"path": str(db), "replica": {"type": "file", "path": str(replica)}}]}))
    col = BackupCollector(db, None, litestream_config=config)
    before = samples(col)
    assert success(before, "backup") == 0  # no replica folder yet
    started = time.time()
    with Child("litestream", ["litestream", "replicate", "-config", config],
               log=tmp_path / "litestream.log") as proc:
        wait_until(lambda: replica.is_dir() and any(p.is_file() for p in replica.rglob("*")),
                   EVENTUALLY, what=f"litestream replica files{proc.tail()}")
        conn = sqlite3.connect(db)
        conn.execute("insert into trades(symbol, ts, qty) values ('ZN', ?, 5)", (time.time(),))
        conn.commit()
        conn.close()
        written = time.time()

        def replicated() -> bool:
            return (value(samples(col), "pitwatch_backup_litestream_last_replica_write_timestamp_seconds")
                    or 0) >= written - 1

        wait_until(replicated, EVENTUALLY, what="the replica to receive the new row")
        got = samples(col)
        assert success(got, "backup") == 1
        stamp = value(got, "pitwatch_backup_litestream_last_replica_write_timestamp_seconds")
        assert started - 1 <= stamp <= time.time() + 1
        col.checks()[0].run_once()
        got = samples(col)
    assert value(got, "pitwatch_backup_restore_test_ok") == 1, col.details()
    assert col.details()["restore_test"].startswith("litestream")


def test_no_backup_yet_is_not_a_failed_restore_test(tmp_path):
    """A new platform has nothing to restore: no result, and the check comes back soon."""
    db = make_db(tmp_path / "trading.db")
    col = BackupCollector(db, tmp_path / "snaps", restore_test_interval=3600)
    (tmp_path / "snaps").mkdir()
    check = col.checks()[0]
    check.retry = 0.2
    check.start()
    try:
        wait_until(lambda: check.latest() is not None, EVENTUALLY, what="the first restore test")
        assert value(samples(col), "pitwatch_backup_restore_test_ok") is None
        backups.snapshot(db, tmp_path / "snaps")
        # Retried well before the one-hour interval, now with a backup to prove.
        wait_until(lambda: value(samples(col), "pitwatch_backup_restore_test_ok") == 1, EVENTUALLY,
                   what="the retried restore test")
    finally:
        check.stop()
