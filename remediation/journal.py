"""The journal: every notification, every decision and every run, in SQLite (WAL).

Written before the receiver answers, so what Alertmanager was told is accepted is
never lost. ``synchronous=FULL`` by default: a commit survives a power cut, not only a
crash (``remediation.journal_synchronous: normal`` trades that for latency).

Tables::

    meta           key/value (node: this journal's id in shared Redis claims)
    notifications  id, received_at, receiver, group_key, status, alerts, body
    decisions      id, notification_id, alert_index, decided_at, alertname,
                   alert_status, fingerprint, starts_at, rule, action, target,
                   outcome (act|dry_run|suppressed|ignored), reason, run_id
    runs           id, decision_id, episode (unique: at most one run per episode),
                   rule, action, target, argv (JSON), alert (JSON), status
                   (queued|running|success|failure|timeout|interrupted|skipped),
                   queued_at, started_at, finished_at, exit_code, output,
                   fencing_token, owner (host:pid of the receiver), timeout
    alert_state    fingerprint (primary key), labels (JSON), status, starts_at, ends_at,
                   firing_until (null: not firing), updated_at: the latest notification
                   of each alert, written with it; what ``blocked_by`` sees as firing
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
create table if not exists meta (key text primary key, value text not null);
create table if not exists notifications (
    id integer primary key,
    received_at real not null,
    receiver text not null,
    group_key text not null,
    status text not null,
    alerts integer not null,
    body text not null
);
create table if not exists decisions (
    id integer primary key,
    notification_id integer not null references notifications(id),
    alert_index integer not null,
    decided_at real not null,
    alertname text not null,
    alert_status text not null,
    fingerprint text not null,
    starts_at text not null,
    rule text,
    action text,
    target text,
    outcome text not null,
    reason text not null,
    run_id integer
);
create index if not exists decisions_by_time on decisions(decided_at);
create table if not exists runs (
    id integer primary key,
    decision_id integer not null references decisions(id),
    episode text not null unique,
    rule text not null,
    action text not null,
    target text not null,
    argv text not null,
    alert text not null,
    status text not null,
    queued_at real not null,
    started_at real,
    finished_at real,
    exit_code integer,
    output text,
    fencing_token integer,
    owner text not null,
    timeout real not null
);
create index if not exists runs_by_rule on runs(rule, queued_at);
create index if not exists runs_by_status on runs(status);
create table if not exists alert_state (
    fingerprint text primary key,
    labels text not null,
    status text not null,
    starts_at text not null,
    ends_at text not null,
    firing_until real,
    updated_at real not null
);
"""

OPEN_STATUSES = ("queued", "running")
_ALERT_STATE = ("insert into alert_state (fingerprint, labels, status, starts_at, ends_at, "
                "firing_until, updated_at) values (?, ?, ?, ?, ?, ?, ?) "
                "on conflict (fingerprint) do update set labels=excluded.labels, "
                "status=excluded.status, starts_at=excluded.starts_at, ends_at=excluded.ends_at, "
                "firing_until=excluded.firing_until, updated_at=excluded.updated_at")
_DECISION = ("insert into decisions (notification_id, alert_index, decided_at, alertname, "
             "alert_status, fingerprint, starts_at, rule, action, target, outcome, reason) "
             "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


class JournalUnavailable(Exception):
    """The journal cannot be written: the receiver answers 503 so Alertmanager retries."""


class Journal:
    """One connection shared by the receiver's threads (SQLite serialises writers anyway)."""

    def __init__(self, path: Path, busy_timeout: float = 2.0, synchronous: str = "full"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                                     check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={'NORMAL' if synchronous == 'normal' else 'FULL'}")
        self._conn.executescript(SCHEMA)
        with self.transaction() as tx:
            row = tx.execute("select value from meta where key='node'").fetchone()
            if row is None:
                tx.execute("insert into meta values ('node', ?)", (uuid.uuid4().hex,))
        self.node = self._conn.execute("select value from meta where key='node'").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self):
        """BEGIN IMMEDIATE ... COMMIT; any SQLite failure becomes JournalUnavailable."""
        with self._lock:
            try:
                self._conn.execute("begin immediate")
            except sqlite3.Error as exc:
                raise JournalUnavailable(str(exc)) from exc
            try:
                yield Tx(self._conn)
                self._conn.execute("commit")
            except sqlite3.Error as exc:
                self._rollback()
                raise JournalUnavailable(str(exc)) from exc
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        try:
            self._conn.execute("rollback")
        except sqlite3.Error:
            pass

    def read(self, sql: str, args: tuple = ()) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._conn.execute(sql, args)]

    def ping(self) -> None:
        self.read("select 1")

    # -- runs, outside the accepting transaction -------------------------------

    def run_started(self, run_id: int, token: int | None) -> None:
        with self.transaction() as tx:
            tx.execute("update runs set status='running', started_at=?, fencing_token=? where id=?",
                       (time.time(), token, run_id))

    def run_finished(self, run_id: int, status: str, exit_code: int | None, output: str) -> None:
        with self.transaction() as tx:
            tx.execute("update runs set status=?, finished_at=?, exit_code=?, output=? where id=?",
                       (status, time.time(), exit_code, output, run_id))

    def mark_interrupted(self) -> list[dict]:
        """Runs left queued/running by the previous receiver -> ``interrupted``.

        Safe because one receiver holds a journal at a time (the engine's lock file)."""
        with self.transaction() as tx:
            rows = [dict(r) for r in tx.execute(
                "select id, rule, action, owner, status from runs where status in (?, ?)",
                OPEN_STATUSES)]
            for r in rows:
                tx.execute("update runs set status='interrupted', finished_at=?, "
                           "output=coalesce(output, '') || ? where id=?",
                           (time.time(), f"[receiver stopped while the run was {r['status']}]",
                            r["id"]))
        return rows

    def prune(self, before: float) -> int:
        """Drop notifications older than ``before``, their decisions that ran nothing, and
        the state of alerts last heard of before then (long past any ``firing_until``)."""
        with self.transaction() as tx:
            tx.execute("delete from alert_state where updated_at < ?", (before,))
            tx.execute("delete from decisions where run_id is null and decided_at < ?", (before,))
            return tx.execute(
                "delete from notifications where received_at < ? and id not in "
                "(select notification_id from decisions)", (before,)).rowcount


class JournalReader:
    """The journal opened read-only (``pitwatch actions`` beside a running receiver):
    the same :meth:`read` as :class:`Journal`, never a write, never a lock held."""

    def __init__(self, path: Path, busy_timeout: float = 5.0):
        self.path = Path(path)
        if not self.path.exists():
            raise JournalUnavailable(f"{self.path}: no journal (has the remediator run here?)")
        self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=busy_timeout,
                                     check_same_thread=False)
        self._conn.row_factory = sqlite3.Row

    def read(self, sql: str, args: tuple = ()) -> list[dict]:
        try:
            return [dict(r) for r in self._conn.execute(sql, args)]
        except sqlite3.Error as exc:
            raise JournalUnavailable(f"{self.path}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()


class Tx:
    """The statements of one accepting transaction, and the policy's view of history."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, args: tuple = ()):
        return self.conn.execute(sql, args)

    # History (remediation.policy) -------------------------------------------
    def episode_ran(self, episode: str) -> bool:
        return self.conn.execute("select 1 from runs where episode=?", (episode,)).fetchone() is not None

    def last_run_at(self, rule: str) -> float | None:
        row = self.conn.execute("select max(queued_at) from runs where rule=?", (rule,)).fetchone()
        return row[0]

    def runs_since(self, rule: str, since: float) -> int:
        return self.conn.execute("select count(*) from runs where rule=? and queued_at>=?",
                                 (rule, since)).fetchone()[0]

    def firing(self, now: float) -> dict[str, dict[str, str]]:
        try:
            rows = self.conn.execute("select fingerprint, labels from alert_state "
                                     "where firing_until > ?", (now,)).fetchall()
        except sqlite3.OperationalError as exc:
            # A journal older than the table, opened read-only by a replay.
            if "no such table" not in str(exc):
                raise
            return {}
        return {fp: json.loads(labels) for fp, labels in rows}

    def target_busy(self, target: str) -> bool:
        return self.conn.execute("select 1 from runs where target=? and status in (?, ?)",
                                 (target, *OPEN_STATUSES)).fetchone() is not None

    # Writes -------------------------------------------------------------------
    def add_notification(self, now: float, n, body: str) -> int:
        return self.conn.execute(
            "insert into notifications (received_at, receiver, group_key, status, alerts, body) "
            "values (?, ?, ?, ?, ?, ?)",
            (now, n.receiver, n.group_key, n.status, len(n.alerts), body)).lastrowid

    def note_alerts(self, now: float, alerts: list[tuple]) -> None:
        """(alert, firing_until) of each alert of a notification: its latest state."""
        self.conn.executemany(_ALERT_STATE, [
            (a.fingerprint, json.dumps(a.labels, sort_keys=True), a.status, a.starts_at,
             a.ends_at, until, now) for a, until in alerts])

    def add_decisions(self, rows: list[tuple]) -> None:
        """Many decisions that start no run, in one statement."""
        self.conn.executemany(_DECISION, rows)

    def add_decision(self, row: tuple) -> int:
        return self.conn.execute(_DECISION, row).lastrowid

    def add_run(self, decision_id: int, episode: str, rule, argv: list[str], alert: dict,
                now: float, owner: str) -> int:
        run_id = self.conn.execute(
            "insert into runs (decision_id, episode, rule, action, target, argv, alert, status, "
            "queued_at, owner, timeout) values (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
            (decision_id, episode, rule.name, rule.action, rule.target, json.dumps(argv),
             json.dumps(alert), now, owner, rule.timeout)).lastrowid
        self.conn.execute("update decisions set run_id=? where id=?", (run_id, decision_id))
        return run_id
