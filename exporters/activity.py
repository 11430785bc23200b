"""``activity``: how old the newest trade may be right now, from ``trading.activity``.

Alert rules are static files, but platforms differ: one takes orders all session long,
another imports the day's trades once a night. The expectation is therefore exported as
a metric, ``pitwatch_activity_expected_max_trade_age_seconds``, and NoTradesWhileMarketOpen
compares the newest trade's age with it. With ``activity: none`` nothing is exported and
the alert stays silent.

The allowance is ``trading.max_trade_age`` of CME Globex *open* time counted back from
now: time the market was closed (the daily halt, weekends, holidays) is added on top, so
a Friday trade is not "26 h old" on Sunday for a platform that imports daily. The
calendar lives in a short-lived child process (see ``exporters/market.py``), refreshed
hourly in the background; the scrape only walks the cached open intervals.
"""
from __future__ import annotations

import time
from typing import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from pitwatch.exporters import market
from pitwatch.exporters.base import CheckError, Concern, Periodic

DAY = 86400.0
# Globex is open about 115 of the 168 hours of a week; the longest holiday closures add
# a few days. This much calendar time always holds max_age of open time.
OPEN_SHARE = 0.65
HOLIDAYS = 4 * DAY
# The calendar also reaches this far ahead, so it outlives a day of failed refreshes.
AHEAD = DAY


def lookback(max_age: float) -> float:
    return max_age / OPEN_SHARE + HOLIDAYS


def allowed_age(window: market.Window, now: float, open_seconds: float) -> float | None:
    """Seconds back from ``now`` that hold ``open_seconds`` of market-open time.

    None when the window does not cover ``now`` or does not reach back far enough.
    """
    if window.is_open(now) is None:
        return None
    remaining, t = open_seconds, now
    for opens, closes in zip(reversed(window.opens), reversed(window.closes)):
        if opens >= t:
            continue  # an interval after now
        end = min(closes, t)
        if end - opens >= remaining:
            return now - (end - remaining)
        remaining -= end - opens
        t = opens
    return None


class ActivityCollector(Concern):
    name = "activity"

    def __init__(self, activity: str, max_age: float, refresh_interval: float = 3600,
                 calendar: Callable[[float, float], market.Window] | None = None,
                 clock: Callable[[], float] = time.time):
        super().__init__()
        self.activity = activity
        self.max_age = max_age
        self.clock = clock
        back = lookback(max_age)
        # calendar(start, horizon) -> the open intervals of [start, start + horizon).
        load = calendar or (lambda start, horizon: market.Window(market.open_intervals(horizon, start)))
        self._calendar = Periodic("activity_calendar", refresh_interval,
                                  lambda: load(self.clock() - back, back + AHEAD))

    def checks(self) -> list[Periodic]:
        return [self._calendar]

    def expected(self) -> float | None:
        good = self._calendar.last_good()  # a failed refresh keeps the window it had
        if good is None:
            return None
        return allowed_age(good[0], self.clock(), self.max_age)

    def measure(self, problems: list[str]) -> Iterator[Metric]:
        latest = self._calendar.latest()
        if latest is None:
            return  # the first calendar load is under way
        if isinstance(latest[0], CheckError):
            problems.append(str(latest[0]))
        allowed = self.expected()
        if allowed is None:
            if not problems:
                problems.append("market calendar does not cover the trade-age window")
            return
        yield GaugeMetricFamily(
            "pitwatch_activity_expected_max_trade_age_seconds",
            f"How old the newest trade may be now: trading.max_trade_age ({self.max_age:g}s) "
            f"of CME Globex open time counted back from now (activity {self.activity})",
            value=allowed)
