"""Backups of the trading database: snapshots with manifests, and proving a copy sound.

Part of the small core: the exporter reads snapshot freshness and runs restore
tests from here, the remediation's ``backup``/``restore`` commands write and restore
snapshots from here. Layout of a snapshots folder::

    <stem>-20261127T063000Z.db     the SQLite online-backup copy
    <stem>-20261127T063000Z.json   its manifest (written last: a snapshot without one
                                   is incomplete and ignored)
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from pitwatch.core import binaries

STAMP = "%Y%m%dT%H%M%SZ"


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


def verify_snapshot(m: Manifest) -> tuple[bool, str]:
    """Checksum against the manifest, then an integrity check of a restored copy."""
    if sha256_file(Path(m.path)) != m.sha256:
        return False, "sha256 differs from the manifest"
    with tempfile.TemporaryDirectory(dir=Path(m.path).parent, prefix=".verify-") as tmp:
        copy = Path(tmp) / "restored.db"
        shutil.copyfile(m.path, copy)
        return integrity_check(copy)


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
