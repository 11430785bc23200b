"""Restores that keep the chain of backups intact, on a running platform whose Litestream
is its own process: replication is proven afterwards (or the restore says "degraded"),
`--no-restart` refuses while the database is open, and the RPO is the backup's own
position against the moment of the fault."""
from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from pitwatch.core import backups, binaries, exits
from pitwatch.core.procs import Child, free_port
from pitwatch.core.times import rfc3339
from support.toy_platform import damage, make_platform
from support.waiting import EVENTUALLY, wait_until

# The bar: a row written through the app after a restore is in the replica by then.
REPLICATED_WITHIN = 15.0


def litestream_config(p) -> Path:
    cfg = p.root / "litestream.yml"
    cfg.write_text(f"addr: 127.0.0.1:{free_port()}\n"
                   f"dbs:\n  - path: {p.db}\n    replicas:\n      - type: file\n"
                   f"        path: {p.root / 'replica'}\n        sync-interval: 200ms\n")
    return cfg


@pytest.fixture
def platform(tmp_path):
    p = make_platform(tmp_path, {"v1": True}, current="v1")
    p.write_config(smoke={"urls": [{"url": p.url + "/api/trades", "name": "trades"}]})
    yield p
    p.stop()


@pytest.fixture
def replicated(platform):
    """Litestream as a service of the platform: its stop/start commands cover it."""
    cfg = litestream_config(platform)
    (platform.state / "litestream.json").write_text(
        json.dumps([binaries.find("litestream"), "replicate", "-config", str(cfg)]))
    platform.write_config(backups={"litestream_config": str(cfg),
                                   "replication_proof_timeout": "30s"})
    platform.ctl("restart")
    wait_until(lambda: in_replica(platform, platform.write_trade()), EVENTUALLY,
               what="the first replication")
    yield platform
    platform.ctl("stop")


def in_replica(p, trade_id: int) -> bool:
    out = p.root / "probe.db"
    out.unlink(missing_ok=True)
    try:
        backups.litestream_restore(p.root / "litestream.yml", p.db, out, timeout=30)
    except RuntimeError:
        return False
    conn = sqlite3.connect(f"file:{out}?mode=ro", uri=True)
    try:
        return conn.execute("select count(*) from trades where id = ?", (trade_id,)).fetchone()[0] == 1
    finally:
        conn.close()


def restore(p, *args: str) -> tuple[int, dict, str]:
    out = p.pitwatch("restore", "--json", *args)
    return out.returncode, json.loads(out.stdout) if out.stdout.strip() else {}, out.stderr


def test_restores_from_litestream_and_from_a_snapshot_leave_replication_running(replicated):
    p = replicated
    assert p.pitwatch("backup", "snapshot").returncode == 0
    for source in ("litestream", "snapshot"):
        committed = p.write_trade()
        wait_until(lambda: in_replica(p, committed), EVENTUALLY, what="the replica")
        damage(p.db)
        code, report, log = restore(p, "--from", source)
        assert code == 0, log
        assert report["healthy"] and report["replication"] == "proven", log
        assert "replication resumed" in log
        assert p.calls()[-2:] == ["stop", "start"]

        after = p.write_trade()
        began = time.monotonic()
        wait_until(lambda: in_replica(p, after), REPLICATED_WITHIN,
                   what=f"a row written after the restore from {source} in the replica")
        print(f"{source}: new row in the replica after {time.monotonic() - began:.1f}s")
    # Back on WAL after the snapshot (a single-file copy): Litestream needs it.
    conn = sqlite3.connect(p.db)
    assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_litestream_left_running_makes_the_restore_degraded(platform, tmp_path):
    cfg = litestream_config(platform)
    platform.write_config(backups={"litestream_config": str(cfg),
                                   "replication_proof_timeout": "3s"})
    # The example's old advice: stop/start cover the app only; Litestream runs on.
    with Child("litestream", [binaries.find("litestream"), "replicate", "-config", cfg],
               log=tmp_path / "ls.log") as ls:
        first = platform.write_trade()
        wait_until(lambda: in_replica(platform, first), EVENTUALLY, what="the replica")
        damage(platform.db)
        code, report, log = restore(platform)
        assert code == exits.DEGRADED, log
        assert report["healthy"] and report["degraded"]
        assert report["replication"] == "not_resumed"
        assert any(f"(pid {ls.pid})" in h for h in report["holders"]), report["holders"]
        assert "replication NOT resumed" in log and "WARNING: litestream" in log
        # The replica really is stuck on the replaced file.
        after = platform.write_trade()
        time.sleep(2)
        assert not in_replica(platform, after)


def test_no_restart_refuses_while_a_process_holds_the_database(replicated):
    p = replicated
    assert p.pitwatch("backup", "snapshot").returncode == 0
    before = p.db.stat().st_ino
    code, _, log = restore(p, "--from", "snapshot", "--no-restart")
    assert code != 0
    assert "refused with --no-restart" in log and "litestream (pid" in log
    assert p.db.stat().st_ino == before  # nothing moved
    assert not (p.root / "quarantine").exists()
    assert not list(p.root.glob(".trading.db.restore-*"))


def test_no_restart_goes_ahead_once_nothing_holds_the_database(platform):
    assert platform.pitwatch("backup", "snapshot").returncode == 0
    platform.ctl("stop")
    code, report, log = restore(platform, "--from", "snapshot", "--no-restart")
    assert code == 0, log
    assert report["quarantine"] and report["holders"] == []


def test_the_rpo_is_the_backups_position_against_the_fault_not_the_newest_row(platform):
    # A journal-like platform: its newest trade is old, its backups are not.
    snap = backups.snapshot(platform.db, platform.root / "snapshots")
    conn = sqlite3.connect(platform.db)
    conn.execute("update trades set executed_at = executed_at - 86400 * 500")
    conn.commit()
    conn.close()
    snap = backups.snapshot(platform.db, platform.root / "snapshots", now=snap.created + 1)
    fault = snap.created + 100
    code, report, log = restore(platform, "--from", "snapshot", "--fault-at", rfc3339(fault))
    assert code == 0, log
    assert report["backup_time"] == snap.created
    assert report["rpo_seconds"] == pytest.approx(fault - snap.created, abs=1)
    assert report["fault_time"] == pytest.approx(int(fault), abs=1)
    assert report["fault_time"] - report["newest_row"] > 86400 * 499  # only a cross-check
    assert report["replication"] == "none"


def test_the_rpo_of_a_litestream_restore_is_the_replicas_newest_transaction(replicated):
    p = replicated
    last = p.write_trade()
    wait_until(lambda: in_replica(p, last), EVENTUALLY, what="the replica")
    written = time.time()
    damage(p.db)
    code, report, log = restore(p, "--fault-at", rfc3339(written + 30))
    assert code == 0, log
    # ltx timestamps have whole seconds; the replica took the row within a few seconds.
    assert written - 10 <= report["backup_time"] <= written + 1
    assert 29 <= report["rpo_seconds"] <= 41


def test_a_proof_switched_off_is_said_not_made(platform):
    platform.write_config(backups={"litestream_config": str(litestream_config(platform)),
                                   "replication_proof_timeout": "0s"})
    assert platform.pitwatch("backup", "snapshot").returncode == 0
    code, report, log = restore(platform, "--from", "snapshot")
    assert code == 0, log
    assert report["replication"] == "not_checked" and "replication not proven" in log
