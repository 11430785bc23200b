import json
import sqlite3
import tempfile
from pathlib import Path

import pytest

from pitwatch.core import backups
from pitwatch.core.config import parse
from pitwatch.core.procs import Child, free_port
from support.waiting import EVENTUALLY, wait_until


def make_db(path: Path, rows: int = 200) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("create table trades (id integer primary key, symbol text, qty int, price real)")
    conn.executemany("insert into trades (symbol, qty, price) values (?, ?, ?)",
                     [("ES", i % 5 + 1, 5000 + i * 0.25) for i in range(rows)])
    conn.commit()
    conn.close()
    return path


def damage(path: Path) -> None:
    """Overwrite pages past the header, as a failing disk would."""
    with open(path, "r+b") as fh:
        fh.seek(4096 * 2)
        fh.write(b"\xde\xad\xbe\xef" * 2048)


def test_snapshot_manifest_and_verify(tmp_path):
    db = make_db(tmp_path / "trading.db")
    m = backups.snapshot(db, tmp_path / "snaps", now=1_700_000_000)
    assert Path(m.path).name == "trading-20231114T221320Z.db"
    on_disk = json.loads(m.manifest_path.read_text())
    assert on_disk["tables"] == {"trades": 200}
    assert on_disk["sha256"] == backups.sha256_file(Path(m.path))
    assert backups.list_snapshots(tmp_path / "snaps") == [m]
    assert backups.verify_snapshot(m, tmp_path) == (True, "ok")
    assert sorted(p.name for p in (tmp_path / "snaps").iterdir()) == [
        "trading-20231114T221320Z.db", "trading-20231114T221320Z.json"]  # nothing beside it


def test_scratch_dir_is_the_configured_folder_else_tmpdir(tmp_path):
    cfg = parse({"platform": {"database": "t.db"},
                 "backups": {"snapshots_dir": "snaps", "scratch_dir": "scratch"}}, base=tmp_path)
    assert backups.scratch_dir(cfg.backups) == tmp_path / "scratch"
    cfg = parse({"platform": {"database": "t.db"}, "backups": {"snapshots_dir": "snaps"}},
                base=tmp_path)
    assert backups.scratch_dir(cfg.backups) == backups.scratch_dir() == Path(tempfile.gettempdir())


def test_verify_fails_loudly_when_the_scratch_folder_is_missing(tmp_path):
    m = backups.snapshot(make_db(tmp_path / "trading.db"), tmp_path / "snaps")
    with pytest.raises(FileNotFoundError):  # no verdict on the snapshot, and no copy elsewhere
        backups.verify_snapshot(m, tmp_path / "no-such-scratch")
    assert len(list((tmp_path / "snaps").iterdir())) == 2


def test_verify_catches_a_changed_or_damaged_snapshot(tmp_path):
    m = backups.snapshot(make_db(tmp_path / "trading.db", rows=3000), tmp_path / "snaps")
    damage(Path(m.path))
    ok, why = backups.verify_snapshot(m)
    assert not ok and "sha256" in why


def test_integrity_check_of_a_damaged_file(tmp_path):
    db = make_db(tmp_path / "trading.db", rows=3000)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert backups.integrity_check(db, "quick_check") == (True, "ok")
    damage(db)
    ok, why = backups.integrity_check(db, "quick_check")
    assert not ok and why
    assert backups.integrity_check(tmp_path / "missing.db") == (False, "missing")


def test_incomplete_snapshots_are_ignored(tmp_path):
    snaps = tmp_path / "snaps"
    m = backups.snapshot(make_db(tmp_path / "trading.db"), snaps)
    (snaps / "trading-20991231T000000Z.db").write_bytes(b"no manifest")
    (snaps / "broken.json").write_text("{not json")
    assert backups.list_snapshots(snaps) == [m]


def test_prune_keeps_the_newest_n(tmp_path):
    db = make_db(tmp_path / "trading.db")
    day = 86400
    made = [backups.snapshot(db, tmp_path / "s", now=1_700_000_000 + i * day) for i in range(6)]
    now = made[-1].created
    removed = backups.prune(tmp_path / "s", retention=3 * day, keep_min=2, now=now)
    assert sorted(r.created for r in removed) == [m.created for m in made[:2]]
    assert len(backups.list_snapshots(tmp_path / "s")) == 4
    # keep_min wins over retention
    removed = backups.prune(tmp_path / "s", retention=0, keep_min=2, now=now + day)
    assert [m.created for m in backups.list_snapshots(tmp_path / "s")] == [m.created for m in made[:-3:-1]]


def test_litestream_restore_from_a_real_replica(tmp_path):
    db = make_db(tmp_path / "trading.db", rows=50)
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(f"addr: 127.0.0.1:{free_port()}\n"
                   f"dbs:\n  - path: {db}\n    replicas:\n      - type: file\n"
                   f"        path: {tmp_path / 'replica'}\n        sync-interval: 200ms\n")
    with Child("litestream", ["litestream", "replicate", "-config", cfg], log=tmp_path / "ls.log"):
        conn = sqlite3.connect(db)
        conn.execute("insert into trades (symbol, qty, price) values ('NQ', 1, 18000)")
        conn.commit()
        conn.close()
        out = tmp_path / "restored.db"

        def restored() -> bool:
            out.unlink(missing_ok=True)
            try:
                backups.litestream_restore(cfg, db, out, timeout=30)
            except RuntimeError:
                return False
            c = sqlite3.connect(out)
            try:
                return c.execute("select count(*) from trades").fetchone()[0] == 51
            finally:
                c.close()

        wait_until(restored, EVENTUALLY, interval=0.5, what="the replica to hold every row")
    assert backups.integrity_check(out) == (True, "ok")


def test_litestream_restore_failure_is_reported(tmp_path):
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(f"dbs:\n  - path: {tmp_path / 'x.db'}\n    replicas:\n      - type: file\n"
                   f"        path: {tmp_path / 'none'}\n")
    with pytest.raises(RuntimeError, match="litestream restore failed"):
        backups.litestream_restore(cfg, tmp_path / "x.db", tmp_path / "out.db", timeout=30)


def test_backup_schedule_snapshots_and_stops_on_term(tmp_path):
    import sys

    make_db(tmp_path / "trading.db")
    cfg = tmp_path / "pitwatch.yml"
    cfg.write_text("platform: {database: trading.db}\nbackups: {snapshots_dir: snaps, keep_min: 1}\n")
    sched = Child("schedule", [sys.executable, "-m", "pitwatch", "backup", "schedule",
                               "--config", cfg, "--every", "1s"], log=tmp_path / "schedule.log")
    try:
        wait_until(lambda: len(backups.list_snapshots(tmp_path / "snaps")) >= 2, EVENTUALLY,
                   what="two scheduled snapshots")
    finally:
        assert sched.stop() == 0  # SIGTERM ends it cleanly
    assert all(backups.verify_snapshot(m)[0] for m in backups.list_snapshots(tmp_path / "snaps"))
