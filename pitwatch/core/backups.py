"""Backups of the trading database: snapshots with manifests, and proving a copy sound.

Part of the small core: the exporter reads snapshot freshness and runs restore
tests from here, the remediation's ``backup``/``restore`` commands write and restore
snapshots from here. Layout of a snapshots folder::

    <stem>-20261127T063000Z.db     the SQLite online-backup copy
    <stem>-20261127T063000Z.json   its manifest (written last: a snapshot without one
                                   is incomplete and ignored)

A restore keeps the files it replaced beside the database, pruned here by count and age::

    <database folder>/quarantine/20261202T131500.123456Z/   trading.db[-wal, -shm]

Temporary copies (``verify_snapshot``, the exporter's restore test) go to
:func:`scratch_dir`, never beside the database or the snapshots: both may be read-only.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from pitwatch.core import binaries

if TYPE_CHECKING:
    from pitwatch.core.config import Backups

STAMP = "%Y%m%dT%H%M%SZ"
QUARANTINE = "quarantine"
# The folder names restore gives a quarantine: UTC time, microseconds optional.
QUARANTINE_STAMP = re.compile(r"\d{8}T\d{6}(\.\d{1,6})?Z")


@dataclass(frozen=True)
class Manifest:
    path: str  # the snapshot .db
    database: str  # what it is a copy of
    created: float  # unix time
    size_bytes: int
    sha256: str
    tables: dict[str, int]  # row counts

    @property
    def manifest_path(self) -> Path:
        return Path(self.path).with_suffix(".json")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute(
        "select name from sqlite_master where type='table' and name not like 'sqlite_%' order by name")]
    return {n: conn.execute(f'select count(*) from "{n}"').fetchone()[0] for n in names}


def integrity_check(path: Path, pragma: str = "integrity_check") -> tuple[bool, str]:
    """Run ``PRAGMA quick_check`` or ``integrity_check`` read-only: (ok, first problem)."""
    if pragma not in ("quick_check", "integrity_check"):
        raise ValueError(pragma)
    if not Path(path).is_file():
        return False, "missing"
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = [r[0] for r in conn.execute(f"PRAGMA {pragma}")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return False, str(exc)
    return rows == ["ok"], "ok" if rows == ["ok"] else "; ".join(rows[:3])


def snapshot(database: Path, snapshots_dir: Path, now: float | None = None) -> Manifest:
    """Copy a live database with SQLite's online backup API, then write its manifest."""
    snapshots_dir.mkdir(parents=True, exist_ok=True)
    now = time.time() if now is None else now
    stamp = datetime.fromtimestamp(now, timezone.utc).strftime(STAMP)
    target = snapshots_dir / f"{database.stem}-{stamp}.db"
    partial = target.with_suffix(".db.partial")
    src = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained single file
            tables = row_counts(dst)
        finally:
            dst.close()
    finally:
        src.close()
    os.replace(partial, target)
    manifest = Manifest(str(target), str(database), now, target.stat().st_size,
                        sha256_file(target), tables)
    tmp = manifest.manifest_path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(asdict(manifest), indent=2, sort_keys=True))
    os.replace(tmp, manifest.manifest_path)
    return manifest


def list_snapshots(snapshots_dir: Path) -> list[Manifest]:
    """Complete snapshots, newest first. Unreadable manifests are skipped."""
    out = []
    for mf in Path(snapshots_dir).glob("*.json"):
        try:
            data = json.loads(mf.read_text())
            m = Manifest(**data)
        except (OSError, ValueError, TypeError):
            continue
        if Path(m.path).exists():
            out.append(m)
    return sorted(out, key=lambda m: m.created, reverse=True)


def prune(snapshots_dir: Path, retention: float, keep_min: int,
          now: float | None = None) -> list[Manifest]:
    """Delete snapshots older than ``retention`` seconds, always keeping ``keep_min``."""
    now = time.time() if now is None else now
    removed = []
    for m in list_snapshots(snapshots_dir)[keep_min:]:
        if now - m.created > retention:
            Path(m.path).unlink(missing_ok=True)
            m.manifest_path.unlink(missing_ok=True)
            removed.append(m)
    return removed


def scratch_dir(backups_cfg: Backups | None = None) -> Path:
    """Where temporary database copies go: ``backups.scratch_dir``, else TMPDIR.

    The one place that decides it. Never the database's or the snapshots' folder: in
    production those are often read-only mounts for whoever only checks them."""
    configured = getattr(backups_cfg, "scratch_dir", None)
    return Path(configured) if configured else Path(tempfile.gettempdir())


def verify_snapshot(m: Manifest, scratch: Path | None = None) -> tuple[bool, str]:
    """Checksum against the manifest, then an integrity check of a restored copy.

    The copy is made in ``scratch`` (default :func:`scratch_dir`) and removed after."""
    if sha256_file(Path(m.path)) != m.sha256:
        return False, "sha256 differs from the manifest"
    scratch = scratch_dir() if scratch is None else Path(scratch)
    with tempfile.TemporaryDirectory(dir=scratch, prefix=".pitwatch-verify-") as tmp:
        copy = Path(tmp) / "restored.db"
        shutil.copyfile(m.path, copy)
        return integrity_check(copy)


@dataclass(frozen=True)
class Quarantined:
    """One ``quarantine/<stamp>/`` folder: the files a restore replaced."""
    path: Path
    created: float  # unix time, from the folder's name (its mtime if that is no date)
    bytes: int  # disk use; an inode already counted in a newer folder is not counted again


def quarantine_dir(database: Path) -> Path:
    return Path(database).parent / QUARANTINE


def list_quarantine(database: Path) -> list[Quarantined]:
    """The quarantined copies beside ``database``, newest first.

    Only folders named like a restore's stamp count; anything else there is not ours.
    Cheap: a stat of each file, never a read (the files are as big as the database)."""
    folder = quarantine_dir(database)
    try:
        entries = [e for e in os.scandir(folder)
                   if QUARANTINE_STAMP.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []  # no restore yet
    found = sorted(((_stamp_time(e), e.name, Path(e.path)) for e in entries), reverse=True)
    seen: set[tuple[int, int]] = set()  # hard links, within a folder or across, count once
    return [Quarantined(path, created, _disk_use(path, seen)) for created, _, path in found]


def prune_quarantine(database: Path, keep: int, max_age: float,
                     now: float | None = None) -> list[Quarantined]:
    """Delete quarantined copies beyond the newest ``keep`` or older than ``max_age``
    seconds; never the newest one (the last restore's evidence). Returns what went."""
    now = time.time() if now is None else now
    removed = []
    for i, q in enumerate(list_quarantine(database)):
        if i == 0 or (i < keep and now - q.created <= max_age):
            continue
        shutil.rmtree(q.path)
        removed.append(q)
    return removed


def _stamp_time(entry: os.DirEntry) -> float:
    name = entry.name
    try:
        fmt = "%Y%m%dT%H%M%S.%fZ" if "." in name else STAMP
        return datetime.strptime(name, fmt).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:  # digits that are no date (month 13): when it was made, then
        return entry.stat(follow_symlinks=False).st_mtime


def _disk_use(folder: Path, seen: set[tuple[int, int]]) -> int:
    """Allocated bytes of the files below ``folder`` whose inode is not in ``seen`` yet."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue  # removed meanwhile
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def litestream_restore(config: Path, database: Path, out: Path, at: str | None = None,
                       timeout: float = 300, binary: str | None = None) -> None:
    """``litestream restore`` of ``database``'s replica into ``out`` (must not exist).

    ``binary`` overrides where litestream is (:func:`pitwatch.core.binaries.find`)."""
    argv = [binaries.find("litestream", binary), "restore", "-config", str(config), "-o", str(out)]
    if at:
        argv += ["-timestamp", at]
    argv.append(str(database))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"litestream restore failed: {proc.stderr.strip()[-500:]}")
