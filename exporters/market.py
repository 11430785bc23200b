"""``market``: is CME Globex trading right now (pitwatch.core.market).

The calendar library pulls in pandas (~60 MB resident). The long-running exporter
keeps its memory small by asking pitwatch.core.market in a short-lived child process,
once an hour, for the open intervals of the next days; a scrape only looks the
current time up in that list.
"""
from __future__ import annotations

import bisect
import json
import os
import subprocess
import sys
import time
from typing import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from pitwatch.exporters.base import CheckError, Concern, Periodic, every
from pitwatch.core import market  # only its location: the calendar itself loads in the child

# Runs in the child: the open intervals from now to now + horizon, at minute resolution
# (Globex opens, halts and closes on whole minutes).
_CHILD = """
import json, sys
from datetime import datetime, timezone
from pitwatch.core.market import is_open
start = int(float(sys.argv[1])) // 60 * 60
out, opened = [], None
for t in range(start, start + int(sys.argv[2]) + 60, 60):
    now_open = is_open(datetime.fromtimestamp(t, timezone.utc))
    if now_open and opened is None:
        opened = t
    elif not now_open and opened is not None:
        out.append((opened, t)); opened = None
print(json.dumps({"start": start, "end": t, "open": out + ([(opened, t)] if opened else [])}))
"""


def open_intervals(horizon: float = 3 * 86400, now: float | None = None) -> dict:
    """{"start", "end", "open": [(from, to), ...]} computed by pitwatch.core.market in a child."""
    now = time.time() if now is None else now
    # The child must import the same pitwatch as this process, wherever it was started.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(market.__file__))))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(now), str(int(horizon))],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": path})
    if proc.returncode != 0:
        raise RuntimeError(f"market calendar: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout)


class Window:
    """Open intervals covering [start, end): answers is_open(t) for t inside it."""

    def __init__(self, data: dict):
        self.start, self.end = data["start"], data["end"]
        self.opens = [a for a, _ in data["open"]]
        self.closes = [b for _, b in data["open"]]

    def is_open(self, at: float) -> bool | None:
        if not self.start <= at < self.end:
            return None
        i = bisect.bisect_right(self.opens, at) - 1
        return i >= 0 and at < self.closes[i]


class MarketCollector(Concern):
    name = "market"

    def __init__(self, refresh_interval: float = 3600, horizon: float = 3 * 86400):
        super().__init__()
        self.refresh_interval = refresh_interval
        self._calendar = Periodic("market_calendar", refresh_interval,
                                  lambda: Window(open_intervals(horizon)))

    def checks(self) -> list[Periodic]:
        return [self._calendar]

    def is_open(self, at: float | None = None) -> bool | None:
        """None until the calendar is loaded, or when it ran out (refresh failing)."""
        good = self._calendar.last_good()  # a failed refresh keeps the window it had
        if good is None:
            return None
        return good[0].is_open(time.time() if at is None else at)

    def measure(self, problems: list[str]) -> Iterator[Metric]:
        latest = self._calendar.latest()
        if latest is None:
            return  # the first calendar load is under way
        if isinstance(latest[0], CheckError):
            problems.append(str(latest[0]))
        state = self.is_open()
        if state is None:
            if not problems:
                problems.append("market calendar does not cover the current time")
            return
        yield GaugeMetricFamily(
            "pitwatch_market_open",
            f"1 while CME Globex trades (sessions, daily halt, holidays; calendar refreshed "
            f"{every(self.refresh_interval)})", value=1.0 if state else 0.0)
