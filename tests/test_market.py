from datetime import datetime, timezone

import pytest

from pitwatch.core.market import MarketCalendar


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.mark.parametrize("when,is_open", [
    ("2026-11-29T22:59", False),  # Sunday 14:59 Los Angeles: before the weekly open
    ("2026-11-29T23:00", True),   # Sunday 15:00 Los Angeles: Globex opens
    ("2026-11-30T21:59", True),   # Monday 13:59
    ("2026-11-30T22:30", False),  # Monday 14:30: the daily halt
    ("2026-11-30T23:00", True),   # Monday 15:00: the next session
    ("2026-12-04T22:00", False),  # Friday 14:00: weekly close
    ("2026-12-05T12:00", False),  # Saturday
    ("2026-11-26T17:59", True),   # Thanksgiving: early close at 12:00 Chicago...
    ("2026-11-26T18:30", False),  # ...so closed at 12:30
    ("2026-12-25T15:00", False),  # Christmas
    ("2026-07-15T20:59", True),   # summer time: 13:59 Los Angeles is 20:59 UTC
    ("2026-07-15T21:30", False),  # 14:30 Los Angeles: the daily halt
    ("2026-07-15T22:00", True),   # 15:00 Los Angeles
])
def test_cme_globex_sessions(when, is_open):
    assert MarketCalendar().is_open(utc(when)) is is_open


def test_naive_time_is_refused():
    with pytest.raises(ValueError):
        MarketCalendar().is_open(datetime(2026, 11, 30, 12))


def test_cache_follows_the_asked_time():
    cal = MarketCalendar()
    assert cal.is_open(utc("2026-11-30T12:00"))
    assert not cal.is_open(utc("2027-12-25T12:00"))  # far outside the first window
    assert cal.is_open(utc("2027-12-27T12:00"))
