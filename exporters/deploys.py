"""``deploys``: deploys and rollbacks as ``pitwatch deploy`` and ``pitwatch rollback``
recorded them, and the releases they left running.

The records are the ``deploys`` table of the remediation journal, or ``deploys.jsonl``
beside the releases when there is no remediation section (their writer is
``pitwatch.remediation.operations.deploys``, a part this one does not import; the
columns read here are its documented ones). Deploys are rare: a scrape counts a few
rows with one query (or re-reads the file only when it changed).
"""
from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from pitwatch.exporters.base import Concern

ACTIONS = ("deploy", "rollback")
RESULTS = ("success", "rolled_back", "failed")


def _versions(switches: list[tuple[str | None, str | None]]) -> tuple[str | None, str | None]:
    """(current, previous) from each record's (from_version, running), oldest first."""
    seen = [v for pair in switches for v in pair if v]
    current = seen[-1] if seen else None
    previous = next((v for v in reversed(seen) if v != current), None)
    return current, previous


class DeploysCollector(Concern):
    name = "deploys"

    def __init__(self, journal: Path | None = None, jsonl: Path | None = None):
        super().__init__()
        self.journal = Path(journal) if journal else None
        self.jsonl = Path(jsonl) if jsonl else None
        self._cache: tuple[tuple, tuple] | None = None  # (file stamp, summary)

    def _from_journal(self) -> tuple[Counter, list[tuple], dict[str, float]]:
        if not self.journal.exists():
            return Counter(), [], {}  # no deploy recorded yet
        conn = sqlite3.connect(f"file:{self.journal}?mode=ro", uri=True, timeout=2)
        try:
            if not conn.execute("select 1 from sqlite_master where type='table' "
                                "and name='deploys'").fetchone():
                return Counter(), [], {}
            counts = Counter({(a, r): n for a, r, n in conn.execute(
                "select action, result, count(*) from deploys group by action, result")})
            last = dict(conn.execute(
                "select action, max(finished_at) from deploys group by action").fetchall())
            # The newest records suffice to find the last two distinct versions.
            running = conn.execute("select from_version, running from deploys "
                                   "order by id desc limit 100").fetchall()[::-1]
        finally:
            conn.close()
        return counts, running, last

    def _from_jsonl(self) -> tuple[Counter, list[tuple], dict[str, float]]:
        try:
            st = os.stat(self.jsonl)
        except FileNotFoundError:
            return Counter(), [], {}
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._cache and self._cache[0] == stamp:
            return self._cache[1]
        counts, running, last = Counter(), [], {}
        for line in self.jsonl.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a torn last line
            counts[(rec.get("action"), rec.get("result"))] += 1
            running.append((rec.get("from_version"), rec.get("running")))
            action, at = rec.get("action"), rec.get("finished_at") or 0
            last[action] = max(last.get(action, 0), at)
        self._cache = (stamp, (counts, running, last))
        return counts, running, last

    def measure(self, problems: list[str]) -> Iterator[Metric]:
        if self.journal is not None:
            counts, running, last = self._from_journal()
        elif self.jsonl is not None:
            counts, running, last = self._from_jsonl()
        else:
            return
        total = CounterMetricFamily(
            "pitwatch_deploys", "Deploys and rollbacks recorded, by how they ended "
            "(rolled_back: the release failed its health gate or watch and the previous one "
            "serves again).", labels=["action", "result"])
        for action in ACTIONS:
            for result in RESULTS:
                total.add_metric([action, result], counts.get((action, result), 0))
        yield total
        current, previous = _versions(running)
        info = GaugeMetricFamily(
            "pitwatch_deploy_release_info", "The release serving after the last recorded "
            "deploy or rollback (role current) and the one before it (role previous); "
            "always 1.", labels=["role", "version"])
        for role, version in (("current", current), ("previous", previous)):
            if version:
                info.add_metric([role, version], 1)
        yield info
        when = GaugeMetricFamily("pitwatch_deploy_last_timestamp_seconds",
                                 "When the last recorded deploy or rollback finished.",
                                 labels=["action"])
        for action in ACTIONS:
            if last.get(action):
                when.add_metric([action], float(last[action]))
        yield when
