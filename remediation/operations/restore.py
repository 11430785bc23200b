"""Restoring the trading database (docs/architecture.md, "Data flow": act).

1. restore into ``.<db>.restore-<pid>`` beside the database (same filesystem, so the
   final rename is atomic), from Litestream (``litestream restore -o``) or a snapshot;
2. integrity check and a sanity query of that copy — a bad backup stops here, with the
   app untouched;
3. stop the app (``stop_command`` must stop Litestream too: a process still holding
   the database is named); hard-link the database, ``-wal`` and ``-shm`` into
   ``quarantine/<time>/`` (pruned by ``backups.quarantine_keep``/``quarantine_max_age``),
   then remove ``-wal``/``-shm`` so no old WAL frame can be applied to the restored file;
4. rename the restored file over the database; start the app; wait until it is healthy
   (health URL and smoke URLs);
5. with Litestream, prove replication resumed (:mod:`.replication`); if not, the
   restore is *degraded*: the app runs on the restored data, the chain of backups is
   broken.

Killed at any point, the database path holds the old file (before step 4; at worst
without the WAL frames it had not checkpointed, which the quarantine keeps) or the
restored one, never a mix of both. RTO = start to healthy. RPO = the moment of the
fault minus the backup's own position (the replica's newest transaction, or the
snapshot's time); the newest row of the restored data is only a cross-check.
"""
from __future__ import annotations

import hashlib
import os
import queue
import re
import shutil
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from pitwatch.core import backups, procs
from pitwatch.core.config import Config
from pitwatch.core.times import parse_time

from pitwatch.remediation.operations import appcontrol as app
from pitwatch.remediation.operations.fencing import Fenced, fenced
from pitwatch.remediation.operations.releases import fsync_dir
from pitwatch.remediation.operations.replication import Proof, prove, replica_position

SIDECARS = ("-wal", "-shm")
CHUNK = 8 << 20
# Column names that hold a row's time, for the RPO cross-check when no rpo_query is set.
_TIME_COLUMN = re.compile(r"(^|_)(at|ts|time|timestamp|created|updated|executed)$", re.I)


class RestoreError(RuntimeError):
    pass


@dataclass
class Report:
    source: str
    backup: str
    quarantine: str | None
    rto_seconds: float
    downtime_seconds: float
    fault_time: float  # the moment the data was last good: the alert's start, or now
    backup_time: float | None  # the backup's own position
    rpo_seconds: float | None  # fault_time - backup_time, never negative
    newest_row: float | None  # the restored data's newest row: a cross-check only
    tables: dict[str, int] = field(default_factory=dict)
    healthy: bool = False
    replication: str = "none"  # proven | not_resumed | not_checked (timeout 0s) | none
    replication_detail: str = ""
    holders: list[str] = field(default_factory=list)  # processes left holding the old file

    @property
    def degraded(self) -> bool:
        return self.healthy and self.replication == "not_resumed"


class Progress:
    """A one-line progress bar on stderr, for copies big enough to wait for."""

    def __init__(self, what: str, total: int, min_bytes: int = 64 << 20, stream=None):
        self.what, self.total = what, max(total, 1)
        self.stream = stream or sys.stderr
        self.enabled = total >= min_bytes
        self._last = -1

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        pct = min(100, done * 100 // self.total)
        if pct != self._last:
            self._last = pct
            bar = "#" * (pct // 4)
            self.stream.write(f"\r{self.what} [{bar:<25}] {pct:3d}% "
                              f"({done >> 20}/{self.total >> 20} MiB)")
            if pct == 100:
                self.stream.write("\n")
            self.stream.flush()


def copy_file(src: Path, dst: Path, progress: Callable[[int], None],
              checksum: bool = False) -> str | None:
    """Copy (fsynced); with ``checksum`` also sha256 the bytes in a second thread
    (hashlib releases the GIL), so the copy costs max(copy, hash) rather than the sum."""
    digest = hashlib.sha256() if checksum else None
    blocks: queue.Queue = queue.Queue(maxsize=8)

    def hash_blocks() -> None:
        while (block := blocks.get()) is not None:
            digest.update(block)

    hasher = threading.Thread(target=hash_blocks, name="sha256") if checksum else None
    if hasher:
        hasher.start()
    done = 0
    try:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            while block := fin.read(CHUNK):
                if hasher:
                    blocks.put(block)
                fout.write(block)
                done += len(block)
                progress(done)
            fout.flush()
            os.fsync(fout.fileno())
    finally:
        if hasher:
            blocks.put(None)
            hasher.join()
    return digest.hexdigest() if digest else None


def _epoch(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        v = float(value)
        return v / 1000 if v > 1e11 else v  # milliseconds are common too
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        try:
            return _epoch(float(value))
        except ValueError:
            return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def newest_row(conn: sqlite3.Connection, query: str | None) -> float | None:
    """The newest row's time: ``rpo_query``, else the max of time-named columns."""
    if query:
        row = conn.execute(query).fetchone()
        return _epoch(row[0]) if row else None
    best = None
    tables = [r[0] for r in conn.execute(
        "select name from sqlite_master where type='table' and name not like 'sqlite_%'")]
    for table in tables:
        for col in conn.execute(f'pragma table_info("{table}")'):
            if _TIME_COLUMN.search(col[1]):
                value = _epoch(conn.execute(f'select max("{col[1]}") from "{table}"').fetchone()[0])
                if value is not None and (best is None or value > best):
                    best = value
    return best


def _pick_snapshot(cfg: Config, at: float | None, path: Path | None) -> backups.Manifest:
    if cfg.backups is None:
        raise RestoreError("the config has no backups section")
    snaps = backups.list_snapshots(cfg.backups.snapshots_dir)
    if path is not None:
        snaps = [m for m in snaps if Path(m.path).resolve() == path.resolve()]
    elif at is not None:
        snaps = [m for m in snaps if m.created <= at]
    if not snaps:
        raise RestoreError(f"no complete snapshot in {cfg.backups.snapshots_dir}"
                           + (" at or before the requested time" if at is not None else ""))
    return snaps[0]


def held_by(db: Path) -> list[str]:
    """Processes holding the database or its sidecars open, as ``name (pid N)``."""
    files = [db] + [Path(f"{db}{s}") for s in SIDECARS]
    return [f"{name} (pid {pid}) holds {path}" for pid, name, path in procs.holders(files)]


def restore(cfg: Config, source: str | None = None, at: str | None = None,
            snapshot_path: Path | None = None, check: str = "integrity_check",
            restart_app: bool = True, checksum: bool = False, force: bool = False,
            fault_time: float | None = None, say: Callable[[str], None] = print) -> Report:
    """See the module docstring. ``checksum`` also compares a snapshot's sha256 with its
    manifest (costs a hash of the whole file; `pitwatch backup verify` does it on a
    schedule, and the integrity check of the copy is the restore's own proof).
    Without ``restart_app`` nothing is moved while a process holds the database open,
    unless ``force``. ``fault_time`` (default: now) is when the data was last good."""
    started = time.monotonic()
    fault_time = time.time() if fault_time is None else fault_time
    db = cfg.platform.database
    bk = cfg.backups
    if not restart_app and not force and (held := held_by(db)):
        raise RestoreError("refused with --no-restart while the database is open: "
                           + "; ".join(held) + " (stop them, or --force)")
    if source is None:
        source = "litestream" if bk and bk.litestream_config else "snapshot"
    for stale in db.parent.glob(f".{db.name}.restore-*"):
        stale.unlink(missing_ok=True)  # left by a restore that was killed
    tmp = db.parent / f".{db.name}.restore-{os.getpid()}"
    try:
        if source == "litestream":
            if bk is None or bk.litestream_config is None:
                raise RestoreError("backups.litestream_config is not set")
            say(f"restoring {db} from litestream ({bk.litestream_config})"
                + (f" at {at}" if at else ""))
            try:
                backups.litestream_restore(bk.litestream_config, db, tmp, at=at,
                                           binary=bk.litestream_binary)
            except (RuntimeError, OSError) as exc:
                raise RestoreError(str(exc)) from None
            backup_desc = f"litestream {bk.litestream_config}"
            try:
                backup_time = replica_position(bk, db)
            except (RuntimeError, OSError, ValueError) as exc:
                say(f"cannot read the replica's position: {exc}")
                backup_time = None
            if at and backup_time is not None:
                backup_time = min(backup_time, parse_time(at).timestamp())
        elif source == "snapshot":
            when = None
            if at:
                try:
                    when = parse_time(at).timestamp()
                except ValueError:
                    raise RestoreError(f"--at {at!r}: expected RFC 3339") from None
            m = _pick_snapshot(cfg, when, snapshot_path)
            say(f"restoring {db} from snapshot {m.path}")
            if Path(m.path).stat().st_size != m.size_bytes:
                raise RestoreError(f"{m.path}: size differs from its manifest")
            digest = copy_file(Path(m.path), tmp, Progress("copying", m.size_bytes), checksum)
            if checksum and digest != m.sha256:
                raise RestoreError(f"{m.path}: sha256 differs from its manifest")
            backup_desc, backup_time = m.path, m.created
        else:
            raise RestoreError(f"unknown source {source!r} (litestream or snapshot)")

        ok, why = backups.integrity_check(tmp, check)
        if not ok:
            raise RestoreError(f"the restored copy fails {check}: {why}")
        conn = sqlite3.connect(f"file:{tmp}?mode=ro", uri=True)
        try:
            tables = backups.row_counts(conn)
            if not tables:
                raise RestoreError("the restored copy holds no tables")
            newest = newest_row(conn, cfg.remediation.rpo_query if cfg.remediation else None)
        except sqlite3.Error as exc:
            raise RestoreError(f"sanity query on the restored copy failed: {exc}") from None
        finally:
            conn.close()
        say(f"restored copy is sound: {sum(tables.values())} rows in {len(tables)} tables")
        if source == "snapshot" and _wal_mode(db):
            # Snapshots are single files (journal DELETE); Litestream needs WAL back. After
            # the read-only checks: a read-only WAL connection leaves -wal/-shm behind.
            conn = sqlite3.connect(tmp)
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.close()

        try:
            with fenced(db.parent):
                pass  # a stale run (its lock expired) stops here, before stopping the app
            stopped_at = time.monotonic()
            if restart_app:
                say("stopping the app")
                app.stop(cfg.platform)
            holders = held_by(db)
            if holders and not restart_app and not force:
                raise RestoreError("refused with --no-restart: " + "; ".join(holders))
            for line in holders:
                # Restoring all the same: the data matters more; the proof below reports it.
                say(f"WARNING: {line} after the app was stopped: it will keep the replaced "
                    f"file; stop_command/start_command should cover it")
            with fenced(db.parent):
                quarantine = _quarantine(db)
                if quarantine:
                    say(f"damaged files kept in {quarantine}")
                os.replace(tmp, db)
            if bk is not None:
                for old in backups.prune_quarantine(db, bk.quarantine_keep, bk.quarantine_max_age):
                    say(f"removed the older quarantine {old.path}")
        except Fenced as exc:
            raise RestoreError(str(exc)) from None
        fsync_dir(db.parent)
        healthy = True
        if restart_app:
            say("starting the app")
            app.start(cfg.platform)
            healthy = app.wait_healthy(cfg.platform, cfg.smoke, say=say)
            say("app healthy" if healthy else "app NOT healthy after the restore")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finished = time.monotonic()
    report = Report(
        source=source, backup=backup_desc, quarantine=str(quarantine) if quarantine else None,
        rto_seconds=finished - started, downtime_seconds=finished - stopped_at,
        fault_time=fault_time, backup_time=backup_time,
        rpo_seconds=max(0.0, fault_time - backup_time) if backup_time is not None else None,
        newest_row=newest, tables=tables, healthy=healthy, holders=holders)
    if healthy and bk is not None and bk.litestream_config:
        if bk.replication_proof_timeout > 0:
            proof: Proof = prove(bk, db, say)
            report.replication = "proven" if proof.ok else "not_resumed"
            report.replication_detail = proof.detail
        else:
            report.replication = "not_checked"
            report.replication_detail = ("replication not proven: "
                                         "backups.replication_proof_timeout is 0s")
        say(report.replication_detail)
    return report


def _wal_mode(db: Path) -> bool:
    """The file format's write version (header byte 18) is 2 in WAL mode."""
    try:
        with open(db, "rb") as fh:
            return fh.read(20)[18:19] == b"\x02"
    except OSError:
        return False


def _quarantine(db: Path) -> Path | None:
    """Keep the database and its sidecars under quarantine/<time>/, then clear the sidecars."""
    present = [p for p in [db] + [Path(f"{db}{s}") for s in SIDECARS] if p.exists()]
    if not present:
        return None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    qdir = db.parent / "quarantine" / stamp
    qdir.mkdir(parents=True)
    for p in present:
        try:
            os.link(p, qdir / p.name)  # no copy: the same inode, kept by a second name
        except OSError:
            shutil.copy2(p, qdir / p.name)
    fsync_dir(qdir)
    for suffix in ("-shm", "-wal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    fsync_dir(db.parent)
    return qdir
