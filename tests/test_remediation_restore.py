"""`pitwatch backup` and `pitwatch restore` on a real platform: real SQLite files, real
Litestream, the app really stopped and started."""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from pitwatch.core import backups
from support.toy_platform import PY, damage, make_db, make_platform
from support.waiting import EVENTUALLY, wait_until


@pytest.fixture
def platform(tmp_path):
    p = make_platform(tmp_path, {"v1": True}, current="v1")
    yield p
    p.stop()


def count(db: Path, where: str = "") -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(f"select count(*) from trades {where}").fetchone()[0]
    finally:
        conn.close()


def test_backup_snapshot_list_verify_prune(platform, tmp_path):
    out = platform.pitwatch("backup", "snapshot")
    assert out.returncode == 0, out.stderr
    assert "500 rows in 1 tables" in out.stdout
    snaps = tmp_path / "snapshots"
    # Two older snapshots, as if taken days ago.
    for days in (5, 4):
        backups.snapshot(platform.db, snaps, now=time.time() - days * 86400)
    listed = json.loads(platform.pitwatch("backup", "list", "--json").stdout)
    assert len(listed) == 3 and listed[0]["tables"] == {"trades": 500}
    assert listed == sorted(listed, key=lambda m: -m["created"])
    assert len(platform.pitwatch("backup", "list").stdout.splitlines()) == 3
    out = platform.pitwatch("backup", "verify", "--all")
    assert out.returncode == 0 and out.stdout.count("ok ") == 3
    damage(Path(listed[2]["path"]))
    out = platform.pitwatch("backup", "verify", "--all")
    assert out.returncode == 1 and f"BAD {listed[2]['path']}: sha256" in out.stdout
    out = platform.pitwatch("backup", "prune", "--keep", "2")
    assert out.returncode == 0 and "1 removed, 2 kept" in out.stdout
    assert not Path(listed[2]["path"]).exists() and Path(listed[1]["path"]).exists()
    out = platform.pitwatch("backup", "prune", "--retention", "1h", "--keep", "1")
    assert "1 removed, 1 kept" in out.stdout
    assert platform.pitwatch("backup", "prune", "--retention", "soon").returncode == 2


def test_restore_from_a_snapshot_quarantines_and_swaps(platform, tmp_path):
    assert platform.pitwatch("backup", "snapshot").returncode == 0
    damage(platform.db)
    damaged_sha = backups.sha256_file(platform.db)
    assert not platform.healthy()
    out = platform.pitwatch("restore", "--from", "snapshot")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "RTO " in out.stdout and "RPO " in out.stdout
    assert count(platform.db) == 500 and backups.integrity_check(platform.db) == (True, "ok")
    assert platform.healthy()
    [q] = (tmp_path / "quarantine").iterdir()
    assert backups.sha256_file(q / "trading.db") == damaged_sha
    assert platform.calls()[-2:] == ["stop", "start"]
    assert not list(tmp_path.glob(".trading.db.restore-*"))


def test_restores_keep_only_the_newest_quarantines(platform, tmp_path):
    platform.write_config(backups={"quarantine_keep": 2})
    assert platform.pitwatch("backup", "snapshot").returncode == 0
    made = []
    for _ in range(4):
        out = platform.pitwatch("restore", "--from", "snapshot", "--json")
        assert out.returncode == 0, out.stderr
        made.append(Path(json.loads(out.stdout)["quarantine"]))
    kept = sorted((tmp_path / "quarantine").iterdir())
    assert kept == made[-2:]  # the newest two; the one just made among them
    assert "removed the older quarantine" in out.stderr


def test_a_bad_backup_stops_before_the_app_is_touched(platform, tmp_path):
    platform.pitwatch("backup", "snapshot")
    [m] = backups.list_snapshots(tmp_path / "snapshots")
    damage(Path(m.path))
    before = backups.sha256_file(platform.db)
    calls = platform.calls()
    out = platform.pitwatch("restore", "--from", "snapshot", "--checksum")
    assert out.returncode == 1 and "sha256 differs" in out.stderr
    out = platform.pitwatch("restore", "--from", "snapshot")  # the integrity check catches it too
    assert out.returncode == 1 and "fails integrity_check" in out.stderr
    assert backups.sha256_file(platform.db) == before and platform.healthy()
    assert platform.calls() == calls and not (tmp_path / "quarantine").exists()
    assert not list(tmp_path.glob(".trading.db.restore-*"))


def _old_state(db: Path) -> int:
    """The database as the app left it: committed rows still in an uncheckpointed WAL."""
    db.unlink()
    for sidecar in ("-wal", "-shm"):
        Path(f"{db}{sidecar}").unlink(missing_ok=True)
    make_db(db, rows=510)
    writer = ("import sqlite3, os, sys; c = sqlite3.connect(sys.argv[1]); "
              "c.execute('pragma wal_autocheckpoint=0'); "
              "c.executemany('insert into trades (symbol) values (?)', [('OLD',)] * 40); "
              "c.commit(); os.kill(os.getpid(), 9)")
    subprocess.run([PY, "-c", writer, str(db)], timeout=30)
    assert Path(f"{db}-wal").stat().st_size > 0
    return count(db)


@pytest.mark.slow  # eight restores, each killed at another step
def test_kill_9_at_any_point_leaves_the_old_or_the_new_database(platform, tmp_path):
    platform.pitwatch("backup", "snapshot")  # the new database: 500 rows
    platform.write_config(platform={"stop_command": platform.ctl_argv("slowstop")})
    old_with_wal = None
    triggers = ["slowstop", "start", 0.8, 1.2, 1.6, 2.0, 2.4, 2.8]
    seen = set()
    for trigger in triggers:
        old_with_wal = _old_state(platform.db)
        assert old_with_wal == 550
        before = len(platform.calls())
        proc = subprocess.Popen([PY, "-m", "pitwatch", "restore", "--from", "snapshot",
                                 "--config", str(platform.config)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.monotonic()
        if isinstance(trigger, str):
            wait_until(lambda: trigger in platform.calls()[before:] or proc.poll() is not None,
                       EVENTUALLY, interval=0.01, what=trigger)
            time.sleep(0.1)  # the kill lands just after that call
        else:
            while time.monotonic() - started < trigger and proc.poll() is None:
                time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # 550: old + its WAL; 510: old main file (WAL kept in quarantine); 500: restored.
        rows = count(platform.db)
        assert rows in (550, 510, 500), (trigger, rows)
        assert backups.integrity_check(platform.db) == (True, "ok")
        seen.add(rows)
        if rows == 510:
            qs = sorted((tmp_path / "quarantine").iterdir())
            assert (qs[-1] / "trading.db-wal").exists()
    assert 550 in seen and 500 in seen, seen
    # Every quarantine holds a database; a later restore cleans up and succeeds.
    for q in (tmp_path / "quarantine").iterdir():
        assert (q / "trading.db").exists()
    out = platform.pitwatch("restore", "--from", "snapshot")
    assert out.returncode == 0, out.stderr
    assert count(platform.db) == 500 and platform.healthy()
    assert not list(tmp_path.glob(".trading.db.restore-*"))
