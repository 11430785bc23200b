"""The trade-age expectation per ``trading.activity``: exported for live and daily, absent
for none, counted in CME Globex open time from the real calendar (child process)."""
from __future__ import annotations

import subprocess
from datetime import datetime, timezone

import pytest
from prometheus_client import generate_latest

from pitwatch import check
from pitwatch.core import config
from pitwatch.exporters import market
from pitwatch.exporters.activity import ActivityCollector, allowed_age
from pitwatch.exporters.registry import build_registry
from support.fixtures import make_db, samples, success, value

METRIC = "pitwatch_activity_expected_max_trade_age_seconds"
H = 3600.0


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


# Week of 2024-06-10 (CDT, UTC-5): Globex opens 17:00 CT = 22:00 UTC Sunday to Thursday
# and closes 16:00 CT = 21:00 UTC Monday to Friday.
TUESDAY_MORNING = utc("2024-06-11T15:00:00")
SUNDAY_NOON = utc("2024-06-16T17:00:00")  # 12:00 CT, closed since Friday 21:00 UTC
SUNDAY_REOPEN = utc("2024-06-16T22:05:00")  # five minutes after the reopening


def collector(activity: str, max_age: float, now: float) -> ActivityCollector:
    """With the real calendar, as the exporter loads it, at a fixed time."""
    col = ActivityCollector(activity, max_age, clock=lambda: now)
    col.checks()[0].run_once()
    return col


def test_live_mid_session_is_the_configured_age():
    got = samples(collector("live", 15 * 60, TUESDAY_MORNING))
    assert value(got, METRIC) == 15 * 60
    assert success(got, "activity") == 1


def test_live_right_after_the_weekend_counts_fridays_last_minutes():
    # 5 open minutes since Sunday's reopening + 10 before Friday's close.
    got = samples(collector("live", 15 * 60, SUNDAY_REOPEN))
    assert value(got, METRIC) == SUNDAY_REOPEN - (utc("2024-06-14T21:00:00") - 10 * 60)


def test_daily_over_the_weekend_adds_the_closed_time():
    # 26 h of open time back from Sunday noon: Friday's whole session (Thu 22:00 to Fri
    # 21:00 UTC, 23 h), the halt before it, then 3 h of Thursday's session.
    got = samples(collector("daily", 26 * H, SUNDAY_NOON))
    assert value(got, METRIC) == SUNDAY_NOON - utc("2024-06-13T18:00:00")
    assert value(got, METRIC) == 71 * H  # not 26 h: Friday's trades are not "too old"


def test_daily_mid_week_adds_only_the_daily_halt():
    got = samples(collector("daily", 26 * H, TUESDAY_MORNING))
    assert value(got, METRIC) == 27 * H


def test_allowed_age_on_a_hand_made_calendar():
    window = market.Window({"start": 0, "end": 10_000, "open": [(0, 1000), (2000, 5000)]})
    assert allowed_age(window, 4000, 500) == 500  # inside a session
    assert allowed_age(window, 2100, 500) == 2100 - 600  # 100 s now, 400 before the gap
    assert allowed_age(window, 1500, 300) == 800  # closed now: back into the last session
    assert allowed_age(window, 4000, 3500) is None  # the window does not reach back so far
    assert allowed_age(window, 20_000, 10) is None  # nor forward


def test_a_calendar_that_cannot_load_is_a_collector_failure_without_a_value():
    def broken(start, horizon):
        raise RuntimeError("market calendar: no data")

    col = ActivityCollector("live", 900, calendar=broken)
    col.checks()[0].run_once()
    got = samples(col)
    assert value(got, METRIC) is None
    assert success(got, "activity") == 0


def registry(tmp_path, trading: dict):
    db = tmp_path / "trading.db"
    if not db.exists():
        make_db(db, trades=10)
    cfg = config.parse({"platform": {"database": str(db)}, "trading": trading,
                        "trading_queries": [{"name": "last_trade_timestamp_seconds",
                                             "sql": "select max(ts) from trades"}],
                        "smoke": {"urls": []}, "security": {"firewall": "off",
                                                           "required_headers": []}})
    return build_registry(cfg, process_metrics=False)


@pytest.mark.parametrize("trading,minimum", [
    ({}, 15 * 60),  # the default: live
    ({"activity": "live"}, 15 * 60),
    ({"activity": "daily"}, 26 * H),
    ({"activity": "daily", "max_trade_age": "50h"}, 50 * H),
])
def test_config_to_exposition(tmp_path, trading, minimum):
    reg = registry(tmp_path, trading)
    reg.run_checks_once()
    body = generate_latest(reg).decode()
    got = samples(reg.concern("activity"))
    # At least the configured open time; more while the market is (or was) closed.
    assert minimum <= value(got, METRIC) <= minimum / 0.65 + 4 * 86400
    lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                          text=True)
    assert (lint.returncode, lint.stdout + lint.stderr) == (0, "")


def test_activity_none_exports_nothing(tmp_path):
    reg = registry(tmp_path, {"activity": "none"})
    assert "activity" not in [c.name for c in reg.concerns]
    reg.run_checks_once()
    assert METRIC not in generate_latest(reg).decode()


@pytest.mark.parametrize("trading,problem", [
    ({"activity": "hourly"}, "trading.activity"),
    ({"max_trade_age": "30s"}, "must be between 1m and 7d"),
    ({"max_trade_age": "8d"}, "must be between 1m and 7d"),
])
def test_config_mistakes_are_named(trading, problem):
    with pytest.raises(config.ConfigError, match=problem.replace(".", r"\.")):
        config.parse({"platform": {"database": "/x.db"}, "trading": trading})


def test_check_judges_the_last_trade_by_the_expectation():
    def findings(age: float, allowed: float, market_open: int):
        s = check.Samples([])
        s.by_name["pitwatch_trading_last_trade_timestamp_seconds"] = [({}, 1_000_000 - age)]
        s.by_name[METRIC] = [({}, allowed)]
        s.by_name["pitwatch_market_open"] = [({}, market_open)]
        return {f.check: f for f in check.evaluate(s, now=1_000_000)}["last trade"]

    assert findings(30 * H, 26 * H, 1).status == check.WARN
    assert findings(30 * H, 71 * H, 1).status == check.OK  # a weekend in between
    assert findings(30 * H, 26 * H, 0).status == check.OK  # closed: not judged late
    assert findings(30 * H, 26 * H, 1).detail == "1.2d ago (may be 1.1d old now)"
