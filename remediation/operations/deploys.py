"""The record of every deploy and rollback: who started it, from and to which release,
the result and the watch's verdict.

Where: with a ``remediation`` section, the ``deploys`` table of the remediation journal
file, so the journal's readers join it with the runs that started a rollback (``run_id``);
without one, ``deploys.jsonl`` beside the releases (the releases folder, or the compose
``.env``'s folder). The exporter reads the same place (``pitwatch.exporters.deploys``).
This module owns the table: the journal's own schema does not know it.

Columns (and JSON keys)::

    id, started_at, finished_at (unix seconds), action (deploy|rollback),
    from_version, to_version (asked for), running (what serves afterwards),
    result (success|rolled_back|failed), watch (the verdict, or "not watched"),
    started_by (person|remediator), who (user and terminal, or rule, run and alert),
    run_id (the remediation run, when the remediator started it), detail
"""
from __future__ import annotations

import getpass
import json
import os
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pitwatch.core.config import Config

TABLE = """
create table if not exists deploys (
    id integer primary key,
    started_at real not null,
    finished_at real not null,
    action text not null,
    from_version text,
    to_version text not null,
    running text,
    result text not null,
    watch text not null,
    started_by text not null,
    who text not null,
    run_id integer,
    detail text not null
);
create index if not exists deploys_by_time on deploys(finished_at);
"""
COLUMNS = ("started_at", "finished_at", "action", "from_version", "to_version", "running",
           "result", "watch", "started_by", "who", "run_id", "detail")
JSONL = "deploys.jsonl"
RESULTS = ("success", "rolled_back", "failed")


@dataclass
class Record:
    action: str
    to_version: str
    from_version: str | None = None
    running: str | None = None
    result: str = "failed"
    watch: str = "not watched"
    detail: str = ""
    started_at: float = field(default_factory=time.time)
    finished_at: float = 0.0
    started_by: str = ""
    who: str = ""
    run_id: int | None = None

    def __post_init__(self):
        if not self.started_by:
            self.started_by, self.who, self.run_id = starter()


def starter(env: dict[str, str] | None = None) -> tuple[str, str, int | None]:
    """(started_by, who, run_id): the remediator gives its actions PITWATCH_RUN_ID and
    friends (remediation.runner); anything else is a person."""
    env = os.environ if env is None else env
    if env.get("PITWATCH_RUN_ID", "").isdigit():
        who = (f"rule {env.get('PITWATCH_RULE', '?')}, run {env['PITWATCH_RUN_ID']}, "
               f"alert {env.get('PITWATCH_ALERTNAME') or '?'}")
        return "remediator", who, int(env["PITWATCH_RUN_ID"])
    try:
        user = env.get("SUDO_USER") or getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    try:
        terminal = os.ttyname(0)
    except OSError:
        terminal = "no terminal"
    return "person", f"{user} ({terminal})", None


class JournalTable:
    """The ``deploys`` table in the remediation journal file (SQLite, WAL)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")  # as the journal's own connection
        conn.executescript(TABLE)
        return conn

    def append(self, record: Record) -> None:
        conn = self._connect()
        try:
            row = asdict(record)
            conn.execute(f"insert into deploys ({', '.join(COLUMNS)}) values "
                         f"({', '.join('?' * len(COLUMNS))})", [row[c] for c in COLUMNS])
        finally:
            conn.close()

    def read(self) -> list[Record]:
        if not self.path.exists():
            return []
        conn = self._connect()
        try:
            rows = conn.execute(f"select {', '.join(COLUMNS)} from deploys order by id").fetchall()
        finally:
            conn.close()
        return [Record(**dict(r)) for r in rows]


class JsonLines:
    """One JSON object a line, appended: for platforms without a remediation journal."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, record: Record) -> None:
        line = json.dumps(asdict(record), sort_keys=True) + "\n"
        # One write of a whole line with O_APPEND: concurrent writers never interleave.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[Record]:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                data = json.loads(line)
                out.append(Record(**{k: data.get(k) for k in COLUMNS if k in data}))
            except (ValueError, TypeError):
                continue  # a line cut short by a full disk: the others still count
        return out


def store_for(cfg: Config) -> JournalTable | JsonLines:
    if cfg.remediation is not None:
        return JournalTable(cfg.remediation.journal)
    p = cfg.platform
    folder = p.compose_env_file.parent if p.deploy == "compose" else p.releases_dir
    if folder is None:
        raise ValueError("platform.releases_dir is not set")
    return JsonLines(folder / JSONL)


def last_deployed(records: list[Record]) -> dict[str, Record]:
    """Per version, the latest record that switched to it and left it running."""
    out: dict[str, Record] = {}
    for r in records:
        if r.running and r.running == r.to_version:
            out[r.running] = r
    return out
