"""``database``: SQLite file sizes, free pages, a probe query, and background integrity checks.

The scrape does O(1) work whatever the database size: two ``stat`` calls, two header
pragmas and one probe of the schema table. ``PRAGMA quick_check`` and
``integrity_check`` read every page, so they run in background threads on their own
intervals and the scrape reports their cached result.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterator

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

from pitwatch.exporters.base import CheckError, Concern, Periodic, every
from pitwatch.exporters.sqlite import connect_ro
from pitwatch.core import backups

PROBE_SQL = "select 1 from sqlite_master limit 1"
# The platform's DB query SLO is p99 < 50 ms; buckets resolve around it.
PROBE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
CHECKS = ("quick_check", "integrity_check")


# Reasons a check could not run at all: not a verdict on the data.
_COULD_NOT_RUN = ("missing", "locked", "busy", "unable to open")


def run_check(database: Path, pragma: str) -> tuple[bool, str]:
    """(ok, detail) of a PRAGMA check; raises when it could not run (lock, missing file)."""
    ok, detail = backups.integrity_check(database, pragma)
    if not ok and any(reason in detail for reason in _COULD_NOT_RUN):
        raise RuntimeError(detail)
    return ok, detail


class DatabaseCollector(Concern):
    name = "database"

    def __init__(self, database: Path, quick_check_interval: float = 30,
                 integrity_check_interval: float = 300):
        super().__init__()
        self.database = Path(database)
        self._checks = {
            "quick_check": Periodic("quick_check", quick_check_interval,
                                    lambda: run_check(self.database, "quick_check")),
            "integrity_check": Periodic("integrity_check", integrity_check_interval,
                                        lambda: run_check(self.database, "integrity_check"),
                                        first_delay=2.0),
        }
        self._intervals = {"quick_check": quick_check_interval,
                           "integrity_check": integrity_check_interval}
        self._hist_lock = threading.Lock()
        self._buckets = [0] * (len(PROBE_BUCKETS) + 1)
        self._sum = 0.0

    def checks(self) -> list[Periodic]:
        return list(self._checks.values())

    def measure(self, problems: list[str]) -> Iterator[Metric]:
        yield from self._sizes(problems)
        yield from self._probe(problems)
        yield from self._integrity(problems)

    def _sizes(self, problems: list[str]) -> Iterator[Metric]:
        try:
            size = self.database.stat().st_size
        except OSError as exc:
            problems.append(f"{self.database}: {exc.strerror}")
            return
        yield GaugeMetricFamily("pitwatch_sqlite_size_bytes", "Size of the database file",
                                value=size)
        wal = Path(f"{self.database}-wal")
        try:
            wal_size = wal.stat().st_size
        except FileNotFoundError:
            wal_size = 0
        yield GaugeMetricFamily("pitwatch_sqlite_wal_size_bytes",
                                "Size of the -wal file (0 without one); growth means checkpoints starve",
                                value=wal_size)

    def _probe(self, problems: list[str]) -> Iterator[Metric]:
        try:
            conn = connect_ro(self.database)
        except (OSError, sqlite3.Error) as exc:
            problems.append(f"{self.database}: {exc}")
            return
        try:
            started = time.perf_counter()
            conn.execute(PROBE_SQL).fetchall()
            took = time.perf_counter() - started
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            freelist = conn.execute("PRAGMA freelist_count").fetchone()[0]
        except sqlite3.Error as exc:
            problems.append(f"probe query: {exc}")
            return
        finally:
            conn.close()
        yield GaugeMetricFamily("pitwatch_sqlite_freelist_bytes",
                                "Unused pages in the file (page_size * freelist_count); VACUUM reclaims them",
                                value=page_size * freelist)
        yield self._observe(took)

    def _observe(self, took: float) -> HistogramMetricFamily:
        with self._hist_lock:
            for i, bound in enumerate(PROBE_BUCKETS):
                if took <= bound:
                    self._buckets[i] += 1
                    break
            else:
                self._buckets[-1] += 1
            self._sum += took
            counts, total = list(self._buckets), self._sum
        cumulative, running = [], 0
        for bound, count in zip([*map(str, PROBE_BUCKETS), "+Inf"], counts):
            running += count
            cumulative.append((bound, running))
        return HistogramMetricFamily(
            "pitwatch_sqlite_probe_query_duration_seconds",
            f"Duration of a cheap read ({PROBE_SQL}) on a fresh read-only connection, one per scrape",
            buckets=cumulative, sum_value=total)

    def _integrity(self, problems: list[str]) -> Iterator[Metric]:
        ok = GaugeMetricFamily("pitwatch_sqlite_integrity_check_ok",
                               "1 if the last PRAGMA <check> said ok (quick_check "
                               f"{every(self._intervals['quick_check'])}, integrity_check "
                               f"{every(self._intervals['integrity_check'])}, in the background)",
                               labels=["check"])
        when = GaugeMetricFamily("pitwatch_sqlite_integrity_check_timestamp_seconds",
                                 "When the last PRAGMA <check> finished", labels=["check"])
        took = GaugeMetricFamily("pitwatch_sqlite_integrity_check_duration_seconds",
                                 "Seconds the last PRAGMA <check> took", labels=["check"])
        for check, periodic in self._checks.items():
            latest = periodic.latest()
            if latest is not None and isinstance(latest[0], CheckError):
                problems.append(f"{check}: {latest[0]}")
            # A check that could not run (lock, missing file) leaves the last verdict and
            # its timestamp in place, so that "no check for an hour" can still alert.
            good = periodic.last_good()
            if good is None:
                continue  # never ran: no sample rather than a false alarm
            (passed, _), finished, seconds = good
            ok.add_metric([check], 1.0 if passed else 0.0)
            when.add_metric([check], finished)
            took.add_metric([check], seconds)
        yield ok
        yield when
        yield took

    def details(self) -> dict[str, str]:
        out = {}
        for check, periodic in self._checks.items():
            latest = periodic.latest()
            if latest is not None:
                out[check] = str(latest[0]) if isinstance(latest[0], CheckError) else latest[0][1]
        return out
