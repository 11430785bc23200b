"""The database and trading collectors against real SQLite files: healthy, locked,
missing, truncated and with overwritten pages."""
from __future__ import annotations

import logging
import sqlite3
import time

import pytest

from pitwatch.exporters.database import DatabaseCollector
from pitwatch.exporters.trading import TradingCollector
from pitwatch.core.config import TradingQuery
from support.fixtures import QUERIES, make_db, overwrite_pages, samples, success, value

QUERY_MODELS = [TradingQuery(**q) for q in QUERIES]


def test_healthy_database(tmp_path):
    db = make_db(tmp_path / "trading.db")
    conn = sqlite3.connect(db)
    conn.execute("delete from trades where id % 2 = 0")  # leaves free pages behind
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page, free = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_size", "freelist_count"))
    conn.close()
    col = DatabaseCollector(db)
    first = samples(col)
    assert success(first, "database") == 1
    assert value(first, "pitwatch_sqlite_size_bytes") == db.stat().st_size
    assert free > 0 and value(first, "pitwatch_sqlite_freelist_bytes") == page * free
    assert value(first, "pitwatch_sqlite_wal_size_bytes") == (tmp_path / "trading.db-wal").stat().st_size
    # No integrity verdict before the background check has run: no sample, no false alarm.
    assert value(first, "pitwatch_sqlite_integrity_check_ok", check="quick_check") is None
    for check in col.checks():
        check.run_once()
    second = samples(col)
    assert value(second, "pitwatch_sqlite_probe_query_duration_seconds_count") == 2
    for check in ("quick_check", "integrity_check"):
        assert value(second, "pitwatch_sqlite_integrity_check_ok", check=check) == 1
        assert value(second, "pitwatch_sqlite_integrity_check_timestamp_seconds", check=check) == \
            pytest.approx(time.time(), abs=30)


def test_trading_queries_become_labelled_gauges(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=50)
    got = samples(TradingCollector(db, QUERY_MODELS).run_checks_once())
    newest = sqlite3.connect(db).execute("select max(ts) from trades").fetchone()[0]
    assert success(got, "trading") == 1
    assert value(got, "pitwatch_trading_last_trade_timestamp_seconds") == newest
    assert value(got, "pitwatch_trading_open_positions", symbol="NQ") == 2
    assert value(got, "pitwatch_trading_open_positions", symbol="ES") == 1
    assert value(got, "pitwatch_trading_open_positions", symbol="CL") is None  # closed


def test_bad_query_fails_alone_and_logs_once_per_state_change(tmp_path, caplog):
    db = make_db(tmp_path / "trading.db", trades=10)
    queries = [TradingQuery(name="broken", sql="select nope from trades"),
               TradingQuery(name="words", sql="select symbol, symbol from trades"),
               TradingQuery(name="empty", sql="select max(ts) from trades where 0"),
               *QUERY_MODELS]
    col = TradingCollector(db, queries).run_checks_once()
    with caplog.at_level(logging.INFO, logger="pitwatch.exporter"):
        for _ in range(3):
            got = samples(col)
    assert success(got, "trading") == 0
    assert value(got, "pitwatch_trading_open_positions", symbol="NQ") == 2  # the rest still run
    assert not any(name == "pitwatch_trading_empty" for name, _ in got)  # NULL -> no sample
    failing = [r for r in caplog.records if "failing" in r.getMessage()]
    assert len(failing) == 1 and "broken" in failing[0].getMessage() and "number" in failing[0].getMessage()
    col.queries = QUERY_MODELS
    col.run_checks_once()
    with caplog.at_level(logging.INFO, logger="pitwatch.exporter"):
        samples(col)
        samples(col)
    assert success(samples(col), "trading") == 1
    assert sum("recovered" in r.getMessage() for r in caplog.records) == 1


def test_missing_database_is_reported_not_created(tmp_path):
    db = tmp_path / "nope.db"
    got = {**samples(DatabaseCollector(db)), **samples(TradingCollector(db, QUERY_MODELS))}
    assert success(got, "database") == 0 and success(got, "trading") == 0
    assert not db.exists()


def test_locked_database_fails_fast(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=10, wal=False)
    holder = sqlite3.connect(db)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("insert into trades(symbol, ts, qty) values ('ES', 1, 1)")
    try:
        started = time.perf_counter()
        got = {**samples(DatabaseCollector(db)),
               **samples(TradingCollector(db, QUERY_MODELS).run_checks_once())}
        took = time.perf_counter() - started
    finally:
        holder.rollback()
        holder.close()
    assert success(got, "database") == 0 and success(got, "trading") == 0
    assert value(got, "pitwatch_sqlite_size_bytes") == db.stat().st_size  # stat still works
    assert took < 2.0  # short busy timeout: a held lock never stalls the scrape


def test_overwritten_pages_fail_the_integrity_checks(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=3000)
    pages = db.stat().st_size // 4096
    overwrite_pages(db, pages // 2, 4)
    col = DatabaseCollector(db)
    for check in col.checks():
        check.run_once()
    got = {**samples(col), **samples(TradingCollector(db, QUERY_MODELS).run_checks_once())}
    assert value(got, "pitwatch_sqlite_integrity_check_ok", check="quick_check") == 0
    assert value(got, "pitwatch_sqlite_integrity_check_ok", check="integrity_check") == 0
    assert "ok" != col.details()["quick_check"]
    assert success(got, "trading") == 0  # max(ts) walks the damaged table


def test_truncated_database(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=3000)
    sqlite3.connect(db).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    with open(db, "r+b") as fh:
        fh.truncate(db.stat().st_size // 2)
    col = DatabaseCollector(db)
    for check in col.checks():
        check.run_once()
    got = {**samples(col), **samples(TradingCollector(db, QUERY_MODELS).run_checks_once())}
    assert value(got, "pitwatch_sqlite_integrity_check_ok", check="quick_check") == 0
    assert success(got, "trading") == 0


def test_a_check_that_cannot_run_keeps_the_last_verdict_ageing(tmp_path):
    db = make_db(tmp_path / "trading.db", trades=10)
    col = DatabaseCollector(db)
    quick = next(c for c in col.checks() if c.name == "quick_check")
    quick.run_once()
    first = value(samples(col), "pitwatch_sqlite_integrity_check_timestamp_seconds", check="quick_check")
    db.rename(tmp_path / "moved.db")  # the check cannot run now
    quick.run_once()
    got = samples(col)
    assert success(got, "database") == 0
    assert value(got, "pitwatch_sqlite_integrity_check_ok", check="quick_check") == 1
    assert value(got, "pitwatch_sqlite_integrity_check_timestamp_seconds", check="quick_check") == first
