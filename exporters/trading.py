"""``trading``: business metrics from the SQL in ``trading_queries``, sql_exporter style.

Every column but the last is a label; the last is the value. A query named
``last_trade_timestamp_seconds`` or ``open_positions`` yields the catalogue metrics
``pitwatch_trading_last_trade_timestamp_seconds`` / ``pitwatch_trading_open_positions``.
The queries run on each scrape, so they should be cheap (indexed) ones.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric

from pitwatch.exporters.base import Concern
from pitwatch.exporters.sqlite import connect_ro
from pitwatch.core.config import TradingQuery

PREFIX = "pitwatch_trading_"


class TradingCollector(Concern):
    name = "trading"

    def __init__(self, database: Path, queries: Sequence[TradingQuery]):
        super().__init__()
        self.database = Path(database)
        self.queries = list(queries)

    def measure(self, problems: list[str]) -> Iterator[Metric]:
        if not self.queries:
            return
        try:
            conn = connect_ro(self.database)
        except (OSError, sqlite3.Error) as exc:
            problems.append(f"{self.database}: {exc}")
            return
        try:
            for query in self.queries:
                try:
                    family = self._run(conn, query)
                except (sqlite3.Error, ValueError, TypeError) as exc:
                    problems.append(f"query {query.name}: {exc}")
                    if "locked" in str(exc):  # the rest would wait for the same lock
                        break
                    continue
                yield family
        finally:
            conn.close()

    def _run(self, conn: sqlite3.Connection, query: TradingQuery) -> GaugeMetricFamily:
        cur = conn.execute(query.sql)
        columns = [d[0] for d in cur.description or ()]
        if not columns:
            raise ValueError("returns no columns")
        labels = [_label_name(c) for c in columns[:-1]]
        help_text = query.help or f"Trading query {query.name}: last column of its SQL, read every scrape"
        family = GaugeMetricFamily(PREFIX + query.name, help_text, labels=labels)
        seen = set()
        for row in cur.fetchall():
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
            family.add_metric(list(key), float(value))
        return family


def _label_name(column: str) -> str:
    out = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in column.lower())
    if not out or out[0].isdigit() or out.startswith("__"):
        out = "l_" + out.lstrip("_")
    return out
