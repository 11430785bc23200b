"""``trading``: business metrics from the SQL in ``trading_queries``, sql_exporter style.

Every column but the last is a label; the last is the value. A query named
``last_trade_timestamp_seconds`` or ``open_positions`` yields the catalogue metrics
``pitwatch_trading_last_trade_timestamp_seconds`` / ``pitwatch_trading_open_positions``.

The SQL is the user's, and its cost grows with the tables it reads: one query that
scans 2.5 M trades takes a second. So each query runs in the background on its own
interval (``Periodic``), interrupted at its timeout, and a scrape only turns the last
result into metrics: its cost is the size of the results, never of the database.
Each query reports its own success, duration and last success; while a query fails,
its values are absent rather than repeated as if fresh.

``plan_warnings`` reads the queries' plans for ``pitwatch config check``: a query
that reads a whole table is slow on a big database even when it is quick on a test one.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric

from pitwatch.exporters.base import CheckError, Concern, Periodic, every
from pitwatch.exporters.sqlite import connect_ro, deadline, estimate_rows, full_scans, query_plan
from pitwatch.core.config import TradingQuery

PREFIX = "pitwatch_trading_"
SUCCESS = PREFIX + "query_success"
DURATION = PREFIX + "query_duration_seconds"
TIMESTAMP = PREFIX + "query_timestamp_seconds"

DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Result:
    """What one run of a query returned: label names and (label values, value) rows."""

    labels: tuple[str, ...]
    rows: tuple[tuple[tuple[str, ...], float], ...]


def run_query(database: Path, query: TradingQuery, timeout: float) -> Result:
    """Run ``query`` once on a fresh read-only connection; raises on any failure."""
    conn = connect_ro(database)
    try:
        with deadline(conn, timeout):
            cur = conn.execute(query.sql)
            columns = [d[0] for d in cur.description or ()]
            fetched = cur.fetchall()
    finally:
        conn.close()
    if not columns:
        raise ValueError("returns no columns")
    rows, seen = [], set()
    for row in fetched:
        value = row[-1]
        if value is None:
            continue  # e.g. max() over an empty table: no sample rather than a fake 0
        if isinstance(value, (bytes, str)):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"last column must be a number, got {value!r:.40}") from None
        key = tuple("" if v is None else str(v) for v in row[:-1])
        if key in seen:
            raise ValueError(f"duplicate label values {key}")
        seen.add(key)
        rows.append((key, float(value)))
    return Result(tuple(_label_name(c) for c in columns[:-1]), tuple(rows))


class TradingCollector(Concern):
    name = "trading"

    def __init__(self, database: Path, queries: Sequence[TradingQuery],
                 interval: float = DEFAULT_INTERVAL, timeout: float = DEFAULT_TIMEOUT):
        super().__init__()
        self.database = Path(database)
        self.interval, self.timeout = interval, timeout
        self.queries = queries

    @property
    def queries(self) -> list[TradingQuery]:
        return list(self._queries)

    @queries.setter
    def queries(self, queries: Sequence[TradingQuery]) -> None:
        """New queries get new checks (not started: the registry starts checks)."""
        for check in getattr(self, "_checks", {}).values():
            check.stop()
        self._queries = list(queries)
        self._checks = {
            q.name: Periodic(q.name, self.interval_of(q),
                             partial(run_query, self.database, q, self.timeout_of(q)))
            for q in self._queries}

    def interval_of(self, query: TradingQuery) -> float:
        return query.interval if query.interval is not None else self.interval

    def timeout_of(self, query: TradingQuery) -> float:
        return query.timeout if query.timeout is not None else self.timeout

    def checks(self) -> list[Periodic]:
        return list(self._checks.values())

    def run_checks_once(self) -> "TradingCollector":
        """Run every query now, in this thread (``pitwatch check``, tests)."""
        for check in self._checks.values():
            check.run_once()
        return self

    def measure(self, problems: list[str]) -> Iterator[Metric]:
        if not self._queries:
            return
        # A stat per scrape: a missing file is said at once, not after the next run.
        missing = not self.database.is_file()
        if missing:
            problems.append(f"{self.database}: no such database file")
        schedule = self._schedule()
        ok = GaugeMetricFamily(SUCCESS, "1 if the last run of the trading query succeeded "
                               f"(queries run in the background {schedule}; while one fails its "
                               "pitwatch_trading_<query> values are absent)", labels=["query"])
        took = GaugeMetricFamily(DURATION, "Seconds the last run of the trading query took "
                                 f"(run in the background {schedule})", labels=["query"])
        when = GaugeMetricFamily(TIMESTAMP, "When the trading query last succeeded "
                                 f"(run in the background {schedule})", labels=["query"])
        for query in self._queries:
            check = self._checks[query.name]
            latest = check.latest()
            if latest is None:
                continue  # not run yet: no sample rather than a false alarm
            result, _, seconds = latest
            took.add_metric([query.name], seconds)
            good = check.last_good()
            if good is not None:
                when.add_metric([query.name], good[1])
            failed = isinstance(result, CheckError)
            ok.add_metric([query.name], 0.0 if failed else 1.0)
            if failed:
                if not missing:  # the missing file already says why
                    problems.append(f"query {query.name}: {result}")
            elif not missing:
                yield self._family(query, result)
        yield ok
        yield took
        yield when

    def _family(self, query: TradingQuery, result: Result) -> GaugeMetricFamily:
        refreshed = (f"refreshed {every(self.interval_of(query))} in the background, "
                     "absent while the query fails")
        help_text = (f"{query.help.rstrip(' .')}; {refreshed}" if query.help
                     else f"Trading query {query.name}: last column of its SQL; {refreshed}")
        family = GaugeMetricFamily(PREFIX + query.name, help_text, labels=list(result.labels))
        for key, value in result.rows:
            family.add_metric(list(key), value)
        return family

    def _schedule(self) -> str:
        intervals = sorted({self.interval_of(q) for q in self._queries})
        if len(intervals) == 1:
            return every(intervals[0])
        return f"{every(intervals[0])} to {every(intervals[-1])}, per query"

    def details(self) -> dict[str, str]:
        out = {}
        for name, check in self._checks.items():
            latest = check.latest()
            if latest is None:
                continue
            result, _, seconds = latest
            if isinstance(result, CheckError):
                out[name] = str(result)
            else:
                rows = len(result.rows)
                out[name] = f"{rows} row{'' if rows == 1 else 's'} in {seconds * 1000:.1f} ms"
        return out


def _label_name(column: str) -> str:
    out = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in column.lower())
    if not out or out[0].isdigit() or out.startswith("__"):
        out = "l_" + out.lstrip("_")
    return out


# An index read in full counts as slow from this many entries. A table read in full
# always does: it grows with the table, and the check often runs on a young database.
# (EXPLAIN QUERY PLAN does not show a LIMIT, so "order by executed_at desc limit 1" on a
# big table is warned about too: max(executed_at) says the same as a SEARCH.)
LARGE_ROWS = 100_000
PLAN_TIMEOUT = 10.0


def plan_warnings(database: Path, queries: Sequence[TradingQuery]) -> list[str]:
    """One line per trading query whose plan reads a whole table (or a large index).

    Reads ``EXPLAIN QUERY PLAN`` on a read-only connection; rows are estimated from
    ``sqlite_stat1`` or counted no further than LARGE_ROWS, so a 10 M-row table costs
    no more than a 100 k-row one. The caller checks that ``database`` exists.
    """
    conn = connect_ro(database)
    out: list[str] = []
    try:
        with deadline(conn, PLAN_TIMEOUT):
            for query in queries:
                out.extend(_query_warnings(conn, query))
    finally:
        conn.close()
    return out


def _query_warnings(conn: sqlite3.Connection, query: TradingQuery) -> list[str]:
    try:
        plan = query_plan(conn, query.sql)
    except sqlite3.Error as exc:
        if "interrupted" in str(exc):  # the deadline: every later statement fails alike
            raise
        return [f"trading query {query.name}: does not run on this database: {exc}"]
    out = []
    for scan in full_scans(conn, plan):
        rows, exact = estimate_rows(conn, scan, LARGE_ROWS)
        size = f"{rows:,} rows" if exact else f"over {LARGE_ROWS:,} rows"
        if scan.index is None:
            out.append(f"trading query {query.name}: {scan.detail} reads the whole table "
                       f"({size}) on every run; make it SEARCH an index")
        elif not exact or rows > LARGE_ROWS:
            out.append(f"trading query {query.name}: {scan.detail} reads the whole index "
                       f"({size}) on every run; make it SEARCH an index (a condition on the "
                       "index's first column, or INDEXED BY)")
    return out
