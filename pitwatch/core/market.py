"""The CME Globex trading calendar: is the market open at a given instant?

Sessions come from pandas_market_calendars' ``CME_Equity`` calendar, which models
Globex (Sunday 15:00 to Friday 14:00 America/Los_Angeles, the daily 14:00-15:00
halt as the gap between sessions, exchange holidays and early closes).
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

CALENDAR = "CME_Equity"
_WINDOW = timedelta(days=14)


class MarketCalendar:
    """Answers ``is_open(at)`` from a cached window of sessions around ``at``."""

    def __init__(self, calendar: str = CALENDAR):
        self._name = calendar
        self._lock = threading.Lock()
        self._sessions: list[tuple[datetime, datetime, datetime, datetime]] = []
        self._covers: tuple[datetime, datetime] | None = None

    def _load(self, at: datetime) -> None:
        # Imported here: pandas costs ~1 s, and most commands never ask.
        import pandas_market_calendars as mcal

        cal = mcal.get_calendar(self._name)
        start, end = at - _WINDOW, at + _WINDOW
        frame = cal.schedule(start.date().isoformat(), end.date().isoformat())
        rows = []
        for row in frame.itertuples():
            rows.append(tuple(
                getattr(row, col).to_pydatetime()
                for col in ("market_open", "market_close", "break_start", "break_end")
            ))
        self._sessions = rows
        # The first and last days may hold sessions that start before / end after the window.
        self._covers = (start + timedelta(days=2), end - timedelta(days=2))

    def is_open(self, at: datetime | None = None) -> bool:
        at = at or datetime.now(timezone.utc)
        if at.tzinfo is None:
            raise ValueError("is_open() needs an aware datetime")
        at = at.astimezone(timezone.utc)
        with self._lock:
            if self._covers is None or not (self._covers[0] <= at <= self._covers[1]):
                self._load(at)
            sessions = self._sessions
        for opens, closes, break_start, break_end in sessions:
            if opens <= at < closes:
                return not (break_start <= at < break_end)
        return False


_default = MarketCalendar()


def is_open(at: datetime | None = None) -> bool:
    """True while CME Globex trades (module-level calendar, cached)."""
    return _default.is_open(at)
