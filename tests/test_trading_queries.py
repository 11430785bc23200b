"""trading_queries against real SQLite files: they run in the background on their own
interval, a scrape reads the last result only, a runaway query is interrupted at its
timeout, each query reports itself, and `pitwatch config check` reads their plans."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from pitwatch.core import config as config_model, resources
from pitwatch.core.config import ConfigError, TradingQuery
from pitwatch.demo import platform as demo_platform, store
from pitwatch.exporters.registry import build_registry
from pitwatch.exporters.trading import TradingCollector, plan_warnings
from support.fixtures import QUERIES, make_db, samples, success, value, write_config

QUERY_MODELS = [TradingQuery(**q) for q in QUERIES]
# Counts to a billion: minutes of work unless something interrupts it.
RUNAWAY = ("with recursive n(i) as (select 1 union all select i + 1 from n where i < 1000000000)"
           " select count(*) from n")
HOUR_QUERY = ("select symbol, sum(quantity) from trades where executed_at > "
              "cast(strftime('%s', 'now') as real) - 3600 group by symbol")


def test_a_scrape_reads_the_last_result_and_never_runs_the_sql(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=50)
    col = TradingCollector(db, QUERY_MODELS)
    before = samples(col)  # nothing has run yet: no values, no per-query verdicts
    assert success(before, "trading") == 1
    assert not [name for name, _ in before if name.startswith("pitwatch_trading_")]
    col.run_checks_once()
    newest = sqlite3.connect(db).execute("select max(ts) from trades").fetchone()[0]
    writer = sqlite3.connect(db)
    writer.execute("insert into trades(symbol, ts, qty) values ('ES', ?, 1)", (newest + 100,))
    writer.commit()
    writer.close()
    got = samples(col)
    # The new trade is not seen until the query runs again: the scrape ran no SQL.
    assert value(got, "pitwatch_trading_last_trade_timestamp_seconds") == newest
    col.run_checks_once()
    assert value(samples(col), "pitwatch_trading_last_trade_timestamp_seconds") == newest + 100


def test_scrapes_stay_fast_while_a_slow_query_runs_in_the_background(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=50)
    slow = TradingQuery(name="slow", sql=RUNAWAY, timeout="4s")
    col = TradingCollector(db, [*QUERY_MODELS, slow])
    for check in col.checks():
        if check.name != "slow":
            check.run_once()
    check = next(c for c in col.checks() if c.name == "slow")
    worker = threading.Thread(target=check.run_once)
    started = time.perf_counter()
    worker.start()
    try:
        took = []
        while time.perf_counter() - started < 1.5:
            t0 = time.perf_counter()
            got = samples(col)
            took.append(time.perf_counter() - t0)
            time.sleep(0.05)
        assert check.latest() is None  # still running: every scrape above ran alongside it
        assert max(took) < 0.25, took
        assert value(got, "pitwatch_trading_open_positions", symbol="NQ") == 2
        assert value(got, "pitwatch_trading_query_success", query="slow") is None
    finally:
        worker.join(30)
    assert not worker.is_alive()


def test_a_runaway_query_is_interrupted_at_its_timeout(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=50)
    col = TradingCollector(db, [*QUERY_MODELS, TradingQuery(name="runaway", sql=RUNAWAY)],
                           timeout=0.5)
    started = time.perf_counter()
    col.run_checks_once()
    assert time.perf_counter() - started < 5  # a billion steps would take minutes
    got = samples(col)
    assert success(got, "trading") == 0
    assert value(got, "pitwatch_trading_query_success", query="runaway") == 0
    assert value(got, "pitwatch_trading_query_success", query="open_positions") == 1
    assert 0.5 <= value(got, "pitwatch_trading_query_duration_seconds", query="runaway") < 3
    assert value(got, "pitwatch_trading_query_timestamp_seconds", query="runaway") is None
    problem = next(p for p in col.last_problems if p.startswith("query runaway:"))
    assert "0.5s timeout" in problem and "interrupted" in problem
    assert value(got, "pitwatch_trading_open_positions", symbol="NQ") == 2  # the others still report


def test_per_query_metrics_and_a_failing_query_drops_its_values(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=50)
    col = TradingCollector(db, QUERY_MODELS, interval=45)
    col.run_checks_once()
    first = samples(col)
    for q in ("last_trade_timestamp_seconds", "open_positions"):
        assert value(first, "pitwatch_trading_query_success", query=q) == 1
        assert 0 <= value(first, "pitwatch_trading_query_duration_seconds", query=q) < 1
        assert value(first, "pitwatch_trading_query_timestamp_seconds", query=q) == \
            pytest.approx(time.time(), abs=30)
    stamp = value(first, "pitwatch_trading_query_timestamp_seconds", query="open_positions")

    writer = sqlite3.connect(db)
    writer.execute("alter table positions rename to positions_old")
    writer.commit()
    col.run_checks_once()
    got = samples(col)
    assert success(got, "trading") == 0
    assert any(p.startswith("query open_positions:") and "no such table" in p
               for p in col.last_problems)
    assert value(got, "pitwatch_trading_query_success", query="open_positions") == 0
    # The last good values are not passed off as fresh; their time stays, ageing.
    assert not [k for k in got if k[0] == "pitwatch_trading_open_positions"]
    assert value(got, "pitwatch_trading_query_timestamp_seconds", query="open_positions") == stamp
    assert value(got, "pitwatch_trading_last_trade_timestamp_seconds") is not None

    writer.execute("alter table positions_old rename to positions")
    writer.commit()
    writer.close()
    col.run_checks_once()
    again = samples(col)
    assert success(again, "trading") == 1
    assert value(again, "pitwatch_trading_open_positions", symbol="NQ") == 2

    registry = CollectorRegistry()
    registry.register(col)
    body = generate_latest(registry).decode()
    assert "every 45s" in body  # HELP says how often the values are refreshed
    lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                          text=True)
    assert (lint.returncode, lint.stdout + lint.stderr) == (0, "")


def test_intervals_and_timeouts_come_from_the_config(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=10)
    path = write_config(tmp_path, db,
                        trading_queries=[*QUERIES, {"name": "hourly", "sql": "select 1",
                                                    "interval": "1h", "timeout": "2s"}],
                        exporter={"trading_query_interval": "20s", "trading_query_timeout": "3s"})
    cfg = config_model.load(path)
    trading = build_registry(cfg, process_metrics=False).concern("trading")
    intervals = {c.name: c.interval for c in trading.checks()}
    assert intervals == {"last_trade_timestamp_seconds": 20, "open_positions": 20, "hourly": 3600}
    assert {q.name: trading.timeout_of(q) for q in trading.queries} == \
        {"last_trade_timestamp_seconds": 3, "open_positions": 3, "hourly": 2}
    for bad, message in ((dict(interval="0s"), "interval: must be longer than 0s"),
                         (dict(name="query_success"), "reserved")):
        with pytest.raises(ConfigError, match=message):
            config_model.parse({"platform": {"database": str(db)},
                                "trading_queries": [{"name": "x", "sql": "select 1", **bad}]})


def test_pitwatch_check_still_shows_trading_results(tmp_path):
    from pitwatch import check

    db = make_db(tmp_path / "trading.db", trades=50)
    cfg = config_model.load(write_config(tmp_path, db))
    findings = {(f.concern, f.check): f for f in check.run(cfg)}
    assert findings[("trading", "collector")].status == check.OK
    assert "ago" in findings[("trading", "last trade")].detail
    assert findings[("trading", "open positions")].detail.startswith("3 across 2 symbols")


# -- plans ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_demo_db(tmp_path_factory):
    """The demo's schema with 300,000 trades over ~3.5 days and 30,000 positions, 300 open."""
    path = tmp_path_factory.mktemp("plans") / "trading.db"
    conn = sqlite3.connect(path)
    conn.executescript("pragma journal_mode=off; pragma synchronous=off;" + store.SCHEMA)
    now, n = time.time(), 300_000
    conn.execute(f"""insert into trades(account, symbol, side, quantity, price, executed_at)
        with recursive n(i) as (select 1 union all select i + 1 from n where i < {n})
        select 'acct' || (i % 50), char(65 + i % 6, 65 + i % 5),
               case when i % 2 then 'buy' else 'sell' end, 1 + i % 9, 4000 + (i % 1000) * 0.25,
               {now} - ({n} - i) * 1.0 from n""")
    conn.execute(f"""insert into positions(account, symbol, side, quantity, avg_price, opened_at,
                                           closed_at)
        with recursive n(i) as (select 1 union all select i + 1 from n where i < {n // 10})
        select 'acct' || (i % 50), char(65 + i % 6, 65 + i % 5), 'long', 1, 4000, {now} - i,
               case when i <= 300 then null else {now} end from n""")
    conn.commit()
    conn.close()
    return path


def _shipped_queries() -> dict[str, list[TradingQuery]]:
    # The demo's block of its config template (it holds no format fields).
    block = demo_platform.CONFIG_TEMPLATE.split("\ntrading_queries:", 1)[1].split("\nbackups:")[0]
    demo = yaml.safe_load("trading_queries:" + block)
    example = yaml.safe_load(resources.path("pitwatch.example.yml").read_text())
    return {"demo": [TradingQuery(**q) for q in demo["trading_queries"]],
            "example": [TradingQuery(**q) for q in example["trading_queries"]]}


@pytest.mark.parametrize("shipped", ["demo", "example"])
def test_the_shipped_queries_search_their_indexes(big_demo_db, shipped):
    queries = _shipped_queries()[shipped]
    assert "contracts_traded_last_hour" in {q.name for q in queries}
    assert plan_warnings(big_demo_db, queries) == []
    conn = sqlite3.connect(big_demo_db)
    hour = next(q for q in queries if q.name == "contracts_traded_last_hour")
    plan = [r[3] for r in conn.execute("explain query plan " + hour.sql)]
    assert any(step.startswith("SEARCH trades USING INDEX trades_time") for step in plan), plan
    # The same SQL without the hint is the slow plan the warning is for.
    unpinned = [r[3] for r in conn.execute("explain query plan " + HOUR_QUERY)]
    assert unpinned == ["SCAN trades USING INDEX trades_symbol_time"], unpinned
    results = {q.name: conn.execute(q.sql).fetchall() for q in queries}
    assert sum(v for _, v in results["contracts_traded_last_hour"]) == \
        conn.execute("select sum(quantity) from trades where executed_at > "
                     "cast(strftime('%s', 'now') as real) - 3600").fetchone()[0]
    assert sum(v for _, v in results["open_positions"]) == 300
    conn.close()


def test_config_check_warns_on_a_scan_and_not_on_a_search(tmp_path, big_demo_db):
    queries = [
        {"name": "hour_scan", "sql": HOUR_QUERY},
        {"name": "hour_search", "sql": HOUR_QUERY.replace("from trades", "from trades indexed by trades_time")},
        {"name": "last_trade_timestamp_seconds", "sql": "select max(executed_at) from trades"},
        {"name": "volume", "sql": "select sum(quantity) from trades"},
        {"name": "open_positions",
         "sql": "select symbol, count(*) from positions where closed_at is null group by symbol"},
        {"name": "users", "sql": "select locked, count(*) from users group by locked"},
        {"name": "typo", "sql": "select max(executed) from trades"},
    ]
    path = write_config(tmp_path, big_demo_db, trading_queries=queries)
    before = big_demo_db.stat().st_mtime_ns
    proc = subprocess.run([sys.executable, "-m", "pitwatch", "config", "check", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("ok (platform; 7 trading queries)")
    warned = {line.split("trading query ")[1].split(":")[0]: line
              for line in lines[1:] if ": warning: " in line}
    # Reading every trade or every entry of a big index is slow; a SEARCH is not, nor is
    # a whole partial index of the 300 open positions.
    assert set(warned) == {"hour_scan", "volume", "users", "typo"}, lines
    assert "SCAN trades USING INDEX trades_symbol_time" in warned["hour_scan"]
    assert "over 100,000 rows" in warned["hour_scan"]
    assert "SCAN trades reads the whole table" in warned["volume"]
    assert "SCAN users reads the whole table (0 rows)" in warned["users"]  # grows with the table
    assert "no such column: executed" in warned["typo"]
    assert big_demo_db.stat().st_mtime_ns == before  # read-only


def test_config_check_without_the_database_only_notes_it(tmp_path):
    path = write_config(tmp_path, tmp_path / "nowhere.db")
    proc = subprocess.run([sys.executable, "-m", "pitwatch", "config", "check", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].endswith(f"note: query plans not checked: no database at "
                                                f"{tmp_path / 'nowhere.db'}")
    assert not (tmp_path / "nowhere.db").exists()


def test_the_row_estimate_comes_from_sqlite_stat1_when_analyzed(tmp_path):
    """ANALYZE's figure is used as it is: a tiny file that says 5 M rows is believed, and
    nothing is counted."""
    path = tmp_path / "trading.db"
    conn = sqlite3.connect(path)
    conn.executescript(store.SCHEMA)
    conn.execute("insert into trades(account, symbol, side, quantity, price, executed_at)"
                 " values ('a', 'ES', 'buy', 1, 6000, 1)")
    conn.execute("analyze")
    conn.execute("update sqlite_stat1 set stat = '5000000 1' where idx = 'trades_time'")
    conn.commit()
    conn.close()
    count = TradingQuery(name="trades", sql="select count(*) from trades")
    [warning] = plan_warnings(path, [count])
    assert "SCAN trades USING COVERING INDEX trades_time reads the whole index (5,000,000 rows)" \
        in warning
