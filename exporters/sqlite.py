"""Read-only SQLite connections for scrapes: never write, never wait long for a lock.

Also what the user SQL of ``trading_queries`` needs around it: a deadline that
interrupts a runaway statement, and a reading of ``EXPLAIN QUERY PLAN`` that says
which steps read a whole table or index.
"""
from __future__ import annotations

import re
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

# A scrape must not hang behind a writer; a lock held longer than this is reported.
BUSY_TIMEOUT = 0.25

# The progress handler runs every this many virtual-machine instructions: often enough
# that a deadline is kept to a few milliseconds, rare enough to cost ~1% of a query.
PROGRESS_STEPS = 10_000


def connect_ro(path: Path, timeout: float = BUSY_TIMEOUT) -> sqlite3.Connection:
    """A read-only connection; fails (instead of creating a file) when ``path`` is missing."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such database file")
    conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=timeout,
                           check_same_thread=False)
    return conn


class Interrupted(sqlite3.OperationalError):
    """A statement ran past its deadline and SQLite interrupted it."""


@contextmanager
def deadline(conn: sqlite3.Connection, seconds: float) -> Iterator[None]:
    """Interrupt any statement on ``conn`` still running ``seconds`` from now.

    SQLite calls the progress handler between VM instructions; a non-zero return
    aborts the statement with SQLITE_INTERRUPT, which is raised here as
    :class:`Interrupted`. (A busy wait for a lock is bounded by the busy timeout, not
    by this.)
    """
    until = time.monotonic() + seconds
    conn.set_progress_handler(lambda: time.monotonic() > until, PROGRESS_STEPS)
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc) and time.monotonic() > until:
            raise Interrupted(f"still running after its {seconds:g}s timeout: interrupted") from None
        raise
    finally:
        conn.set_progress_handler(None, 0)


# SQLite >= 3.36 says "SCAN t", older ones "SCAN TABLE t"; an alias follows "AS".
_SCAN = re.compile(r"^SCAN (?:TABLE )?(?P<table>\S+)(?: AS \S+)?"
                   r"(?: USING (?P<covering>COVERING )?INDEX (?P<index>\S+))?")


@dataclass(frozen=True)
class Scan:
    """One step of a plan that reads a whole table, or a whole index of it."""

    table: str
    index: str | None  # None: the table's own b-tree, every row
    detail: str  # the plan's own words


def query_plan(conn: sqlite3.Connection, sql: str) -> list[str]:
    """The steps of ``EXPLAIN QUERY PLAN sql``; raises sqlite3.Error when it does not compile."""
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]


def full_scans(conn: sqlite3.Connection, plan: list[str]) -> list[Scan]:
    """The steps of ``plan`` that read all of a real table (or of one of its indexes).

    A SEARCH (an index range or lookup) is not one; neither is a SCAN of a subquery, a
    CTE or a constant row.
    """
    tables = {name.lower() for (name,) in conn.execute(
        "select name from sqlite_master where type = 'table'")}
    out = []
    for detail in plan:
        match = _SCAN.match(detail)
        if match and match["table"].lower() in tables:
            out.append(Scan(match["table"], match["index"], detail))
    return out


def estimate_rows(conn: sqlite3.Connection, scan: Scan, enough: int) -> tuple[int, bool]:
    """(rows, exact): how many entries ``scan`` reads, counted no further than ``enough``.

    ``sqlite_stat1`` (written by ANALYZE) answers at once when it has the table or
    index. Otherwise the rows are counted with ``LIMIT enough``, so a 10 M-row table
    costs as little as a 100 k-row one; a partial index is counted under its own
    WHERE clause, since it holds only the rows that match it (open positions, not
    every position ever). ``exact`` is False when the count stopped at the limit.
    """
    stat = _stat1_rows(conn, scan.table, scan.index)
    if stat is not None:
        return stat, True
    source = _quote(scan.table)
    where = _partial_where(conn, scan.index) if scan.index else None
    if where:
        source += f" INDEXED BY {_quote(scan.index)} WHERE {where}"
    try:
        (rows,) = conn.execute(
            f"select count(*) from (select 1 from {source} limit {int(enough) + 1})").fetchone()
    except sqlite3.Error:  # e.g. the partial clause did not parse: count the table instead
        (rows,) = conn.execute(
            f"select count(*) from (select 1 from {_quote(scan.table)} limit {int(enough) + 1})"
        ).fetchone()
    return min(rows, enough), rows <= enough


def _stat1_rows(conn: sqlite3.Connection, table: str, index: str | None) -> int | None:
    try:
        # (tbl, NULL) exists only for a table without indexes; otherwise count.
        row = conn.execute("select stat from sqlite_stat1 where tbl = ? collate nocase "
                           "and idx is ? collate nocase", (table, index)).fetchone()
    except sqlite3.OperationalError:  # no sqlite_stat1: never analyzed
        return None
    if row is None or not str(row[0]).split():
        return None
    try:
        return int(str(row[0]).split()[0])
    except ValueError:
        return None


def _partial_where(conn: sqlite3.Connection, index: str) -> str | None:
    row = conn.execute("select sql from sqlite_master where type = 'index' and name = ? "
                       "collate nocase", (index,)).fetchone()
    if not row or not row[0]:
        return None  # an automatic index (a primary key, a unique constraint)
    # CREATE INDEX ... ON t(cols) WHERE expr: the clause follows the column list.
    match = re.search(r"\)\s*WHERE\s+(.+)$", row[0], re.IGNORECASE | re.DOTALL)
    return match.group(1).strip().rstrip(";") if match else None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
