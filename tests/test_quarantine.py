"""The files restores replace, kept in quarantine/<time>/ beside the database: listed with
their real disk use, pruned by count and age (never the newest), shown by `backup list`,
pruned by `backup prune`, and measured by the backup collector."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from prometheus_client import generate_latest

from pitwatch.core import backups
from pitwatch.exporters.backup import BackupCollector
from pitwatch.exporters.registry import ExporterRegistry
from support.fixtures import make_db, samples, success, value, write_config

DAY = 86400.0


def stamp(t: float) -> str:
    """A folder name as `pitwatch restore` gives it."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def quarantine(db: Path, t: float, link: bool = True, wal: bytes = b"") -> Path:
    """A quarantine folder made at ``t`` as restore makes one: the database hard-linked
    (or copied), and a -wal file when ``wal`` is given."""
    folder = db.parent / "quarantine" / stamp(t)
    folder.mkdir(parents=True)
    if link:
        os.link(db, folder / db.name)
    else:
        (folder / db.name).write_bytes(db.read_bytes())
    if wal:
        (folder / f"{db.name}-wal").write_bytes(wal)
    return folder


def du(*files: Path) -> int:
    """Bytes on disk of ``files`` by du(1), which counts a hard-linked file once."""
    out = subprocess.run(["du", "-c", "--block-size=1", *map(str, files)], capture_output=True,
                         text=True, check=True).stdout
    return int(out.splitlines()[-1].split()[0])


def pitwatch(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pitwatch", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=120)


def test_listing_is_newest_first_with_real_disk_use(tmp_path):
    db = make_db(tmp_path / "trading.db", wal=False)
    assert backups.list_quarantine(db) == []  # no restore yet
    t0 = 1_764_000_000.25
    old = quarantine(db, t0, link=False)
    new = quarantine(db, t0 + DAY, wal=os.urandom(300_000))
    held = backups.list_quarantine(db)
    assert [q.path for q in held] == [new, old]
    assert [q.created for q in held] == [t0 + DAY, t0]  # from the name, microseconds too
    files = [new / "trading.db", new / "trading.db-wal", old / "trading.db"]
    assert [q.bytes for q in held] == [du(*files[:2]), du(files[2])]
    assert held[0].bytes >= 300_000 + db.stat().st_size  # allocated blocks, not names
    assert sum(q.bytes for q in held) == du(*files)


def test_a_hard_linked_file_counts_once(tmp_path):
    db = make_db(tmp_path / "trading.db", wal=False)
    t0 = time.time() - DAY
    first = quarantine(db, t0)
    # Two folders holding the same inode (the live database's, too): one file's blocks.
    second = quarantine(db, t0 + 60)
    assert (first / "trading.db").stat().st_nlink == 3
    held = backups.list_quarantine(db)
    one_copy = du(db)
    assert one_copy > 100_000
    assert [q.bytes for q in held] == [one_copy, 0]  # counted in the newer folder
    assert held[0].path == second
    # A separate copy is separate space.
    quarantine(db, t0 + 120, link=False)
    assert sum(q.bytes for q in backups.list_quarantine(db)) == 2 * one_copy


def test_a_stamp_that_is_no_date_falls_back_to_the_folders_mtime(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=10, wal=False)
    odd = tmp_path / "quarantine" / "20261399T999999Z"  # month 13
    odd.mkdir(parents=True)
    os.utime(odd, (1_700_000_000, 1_700_000_000))
    (q,) = backups.list_quarantine(db)
    assert (q.path, q.created, q.bytes) == (odd, 1_700_000_000, 0)


def test_prune_by_count_keeps_the_newest(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=10, wal=False)
    now = time.time()
    folders = [quarantine(db, now - i * 3600) for i in range(5)]  # newest first
    removed = backups.prune_quarantine(db, keep=2, max_age=30 * DAY, now=now)
    assert [q.path for q in removed] == folders[2:]
    assert [q.path for q in backups.list_quarantine(db)] == folders[:2]
    assert not any(f.exists() for f in folders[2:])
    assert db.stat().st_nlink == 3  # the live database lost only the removed names
    assert backups.prune_quarantine(db, keep=2, max_age=30 * DAY, now=now) == []


def test_prune_by_age_but_never_the_newest(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=10, wal=False)
    now = time.time()
    folders = [quarantine(db, now - d * DAY) for d in (10, 12, 20)]
    # Only the two that are too old go; 10 days is too old as well, but it is the newest.
    removed = backups.prune_quarantine(db, keep=5, max_age=7 * DAY, now=now)
    assert [q.path for q in removed] == folders[1:]
    assert [q.path for q in backups.list_quarantine(db)] == folders[:1]
    # Nothing may go, whatever the settings say: the last restore's evidence stays.
    assert backups.prune_quarantine(db, keep=0, max_age=0, now=now + 365 * DAY) == []
    assert folders[0].is_dir()
    # Within age and count, everything stays.
    younger = quarantine(db, now - 3600)
    assert backups.prune_quarantine(db, keep=5, max_age=11 * DAY, now=now) == []
    assert [q.path for q in backups.list_quarantine(db)] == [younger, folders[0]]


def test_anything_not_named_like_a_stamp_is_left_alone(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=10, wal=False)
    now = time.time()
    newest = quarantine(db, now - 60)
    old = quarantine(db, now - 30 * DAY)
    qdir = tmp_path / "quarantine"
    elsewhere = tmp_path / "keep-me"
    elsewhere.mkdir()
    (elsewhere / "important.db").write_bytes(b"x" * 5000)
    foreign = [qdir / "notes", qdir / "20200101T000000Z-by-hand", qdir / "README"]
    foreign[0].mkdir()
    foreign[1].mkdir()
    (foreign[1] / "trading.db").write_bytes(b"y" * 5000)
    foreign[2].write_text("copied off to the NAS\n")
    stamp_file = qdir / "20200102T000000Z"  # a stamp, but a file
    stamp_file.write_text("not a folder")
    link = qdir / "20200103T000000Z"  # a stamp, but a symlink to somewhere else
    link.symlink_to(elsewhere)
    for path in (*foreign, stamp_file):
        os.utime(path, (0, 0), follow_symlinks=False)
    assert [q.path for q in backups.list_quarantine(db)] == [newest, old]
    removed = backups.prune_quarantine(db, keep=1, max_age=0, now=now)
    assert [q.path for q in removed] == [old]
    assert sorted(p.name for p in qdir.iterdir()) == sorted(
        [newest.name, *(p.name for p in foreign), stamp_file.name, link.name])
    assert (foreign[1] / "trading.db").exists() and (elsewhere / "important.db").exists()


def test_backup_list_shows_the_quarantine_and_keeps_its_json(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=100, wal=False)
    config = write_config(tmp_path, db, backups={"snapshots_dir": str(tmp_path / "snaps")})
    snap = backups.snapshot(db, tmp_path / "snaps")
    out = pitwatch(config, "backup", "list")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [out.stdout.splitlines()[0]]  # no empty section
    assert out.stdout.rstrip().endswith(snap.path)

    t = datetime(2026, 12, 2, 13, 15, 0, 123456, timezone.utc).timestamp()
    q = quarantine(db, t, wal=b"w" * 10_000)
    assert q.name == "20261202T131500.123456Z"
    size = du(q / "trading.db", q / "trading.db-wal")
    out = pitwatch(config, "backup", "list")
    lines = out.stdout.splitlines()
    assert lines[0].endswith(snap.path) and lines[1] == ""
    assert lines[2] == f"quarantined by restores, {size} bytes on disk:"
    assert lines[3].split() == ["2026-12-02", "13:15:00Z", str(size), str(q)]
    assert len(lines) == 4

    # --json is the list of manifests it always was; --json-all adds the quarantine.
    listed = json.loads(pitwatch(config, "backup", "list", "--json").stdout)
    assert [m["path"] for m in listed] == [snap.path]
    both = json.loads(pitwatch(config, "backup", "list", "--json-all").stdout)
    assert both["snapshots"] == listed
    assert both["quarantine"] == [{"path": str(q), "created": t, "bytes": size}]


def test_backup_prune_prunes_the_quarantine_by_the_config(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=100, wal=False)
    config = write_config(tmp_path, db, backups={
        "snapshots_dir": str(tmp_path / "snaps"), "quarantine_keep": 2,
        "quarantine_max_age": "3d"})
    backups.snapshot(db, tmp_path / "snaps")
    out = pitwatch(config, "backup", "prune")
    assert out.returncode == 0, out.stderr
    assert "quarantine" not in out.stdout  # none yet: nothing to say
    now = time.time()
    keep = [quarantine(db, now - 3600), quarantine(db, now - DAY)]
    by_count = quarantine(db, now - 2 * DAY, link=False)
    by_age = quarantine(db, now - 4 * DAY)
    size = backups.list_quarantine(db)[2].bytes
    out = pitwatch(config, "backup", "prune")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines == ["0 removed, 1 kept", f"removed {by_count} ({size} bytes)",
                     f"removed {by_age} (0 bytes)", "quarantine: 2 removed, 2 kept"]
    assert [q.path for q in backups.list_quarantine(db)] == keep
    assert pitwatch(config, "backup", "prune").stdout.splitlines()[-1] == \
        "quarantine: 0 removed, 2 kept"


def test_collector_exports_the_quarantine_and_promtool_accepts_it(tmp_path):
    db = make_db(tmp_path / "trading.db", wal=False)
    col = BackupCollector(db, None)
    got = samples(col)
    assert success(got, "backup") == 1
    assert value(got, "pitwatch_backup_quarantine_copies") == 0
    assert value(got, "pitwatch_backup_quarantine_bytes") == 0
    t = time.time()
    quarantine(db, t - 60)  # linked: shares the live database's blocks
    second = quarantine(db, t, link=False, wal=os.urandom(50_000))
    got = samples(col)
    assert value(got, "pitwatch_backup_quarantine_copies") == 2
    files = [second / "trading.db", second / "trading.db-wal", db]
    assert value(got, "pitwatch_backup_quarantine_bytes") == du(*files)
    (tmp_path / "quarantine" / "notes").mkdir()  # not a copy
    assert value(samples(col), "pitwatch_backup_quarantine_copies") == 2
    body = generate_latest(ExporterRegistry([col], process_metrics=False)).decode()
    assert "pitwatch_backup_quarantine_bytes " in body
    lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                          text=True)
    assert (lint.returncode, lint.stdout + lint.stderr) == (0, "")


def test_an_unreadable_quarantine_is_a_collector_failure(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=10, wal=False)
    (tmp_path / "quarantine").write_text("a file where the folder should be")
    col = BackupCollector(db, None)
    got = samples(col)
    assert success(got, "backup") == 0
    assert value(got, "pitwatch_backup_quarantine_copies") is None
