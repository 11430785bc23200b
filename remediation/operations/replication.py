"""Proving that Litestream replicates the database a restore put in place.

A restore renames a new file over the database. A Litestream that was not stopped and
started with the app keeps its handles on the replaced inode: it logs
``sync error … -wal: no such file`` and the replica silently stops taking writes.
The proof: write a marker row into the restored database, then wait until a restore
of the replica holds it. While waiting, ``litestream ltx`` (a listing of the
replica's files) is cheap; a real restore into the scratch folder runs only when the
replica has moved on.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pitwatch.core import backups, binaries
from pitwatch.core.config import Backups
from pitwatch.core.times import parse_time

# Holds one row, the latest marker; the app never reads it.
TABLE = "pitwatch_replication_proof"


@dataclass(frozen=True)
class Proof:
    ok: bool
    seconds: float
    detail: str


def replica_files(bk: Backups, database: Path) -> list[dict]:
    """The replica's LTX files (every level) as ``litestream ltx -json`` lists them."""
    argv = [binaries.find("litestream", bk.litestream_binary), "ltx", "-config",
            str(bk.litestream_config), "-level", "all", "-json", str(database)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"litestream ltx failed: {proc.stderr.strip()[-300:]}")
    return json.loads(proc.stdout or "[]") or []


def replica_position(bk: Backups, database: Path) -> float | None:
    """When the replica's newest transaction was taken (unix time, whole seconds)."""
    stamps = [parse_time(f["timestamp"]).timestamp() for f in replica_files(bk, database)
              if f.get("timestamp")]
    return max(stamps, default=None)


def _head(bk: Backups, database: Path) -> str:
    return max((f.get("max_txid", "") for f in replica_files(bk, database)), default="")


def write_marker(database: Path) -> str:
    token = uuid.uuid4().hex
    conn = sqlite3.connect(database, timeout=30)
    try:
        with conn:
            conn.execute(f"create table if not exists {TABLE} "
                         "(id integer primary key, token text not null, written_at real not null)")
            conn.execute(f"delete from {TABLE}")
            conn.execute(f"insert into {TABLE} (token, written_at) values (?, ?)",
                         (token, time.time()))
    finally:
        conn.close()
    return token


def _replica_holds(bk: Backups, database: Path, token: str) -> bool:
    with tempfile.TemporaryDirectory(dir=backups.scratch_dir(bk), prefix=".pitwatch-proof-") as tmp:
        out = Path(tmp) / "replica.db"
        backups.litestream_restore(bk.litestream_config, database, out,
                                   binary=bk.litestream_binary)
        conn = sqlite3.connect(f"file:{out}?mode=ro", uri=True)
        try:
            return conn.execute(f"select count(*) from {TABLE} where token = ?",
                                (token,)).fetchone()[0] > 0
        except sqlite3.Error:
            return False
        finally:
            conn.close()


def prove(bk: Backups, database: Path, say: Callable[[str], None] = print) -> Proof:
    """Write a marker row; True once a restore of the replica holds it, within
    ``bk.replication_proof_timeout``."""
    started = time.monotonic()
    deadline = started + bk.replication_proof_timeout
    try:
        seen = _head(bk, database)
        token = write_marker(database)
        say("proving replication: a row written now must come back out of the replica")
        while True:
            head = _head(bk, database)
            if head != seen:
                seen = head
                if _replica_holds(bk, database, token):
                    took = time.monotonic() - started
                    return Proof(True, took, f"replication resumed: a row written after the "
                                             f"restore was restorable from the replica in {took:.1f}s")
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
    except (RuntimeError, OSError, ValueError, sqlite3.Error, subprocess.TimeoutExpired) as exc:
        return Proof(False, time.monotonic() - started, f"replication not proven: {exc}")
    return Proof(False, time.monotonic() - started,
                 f"replication NOT resumed: a row written after the restore is not in the "
                 f"replica after {bk.replication_proof_timeout:g}s. A Litestream that was not "
                 f"restarted keeps replicating the replaced file: make platform.stop_command "
                 f"and start_command stop and start it with the app")
