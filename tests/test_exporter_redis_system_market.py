"""The redis, system and market collectors against a real Redis, real processes, the real calendar."""
from __future__ import annotations

import sys
import time
from datetime import datetime, timezone

import psutil

from pitwatch.exporters.market import MarketCollector, Window, open_intervals
from pitwatch.exporters.redis import RedisCollector
from pitwatch.exporters.system import SystemCollector
from pitwatch.core import market
from pitwatch.core.procs import Child
from support.fixtures import samples, success, value
from support.servers import start_redis
from support.waiting import wait_until


def test_redis_up_then_down(tmp_path):
    redis, url = start_redis(tmp_path)
    try:
        col = RedisCollector(url)
        got = samples(col)
        assert success(got, "redis") == 1
        assert value(got, "pitwatch_redis_up") == 1
        assert 0 < value(got, "pitwatch_redis_ping_duration_seconds") < 0.5
        assert value(got, "pitwatch_redis_used_memory_bytes") > 100_000
    finally:
        redis.stop()
    started = time.perf_counter()
    got = samples(col)
    assert time.perf_counter() - started < 2
    assert value(got, "pitwatch_redis_up") == 0
    assert success(got, "redis") == 0
    assert value(got, "pitwatch_redis_ping_duration_seconds") is None


def test_redis_with_a_password(tmp_path):
    redis, url = start_redis(tmp_path, "--requirepass", "s3cr:t/pw")
    try:
        host = url.removeprefix("redis://")
        good = samples(RedisCollector(f"redis://:s3cr%3At%2Fpw@{host}"))
        wrong = samples(RedisCollector(f"redis://:nope@{host}"))
        anonymous = samples(RedisCollector(url))
    finally:
        redis.stop()
    assert value(good, "pitwatch_redis_up") == 1 and success(good, "redis") == 1
    for bad in (wrong, anonymous):
        assert value(bad, "pitwatch_redis_up") == 0 and success(bad, "redis") == 0


def test_system_reads_the_app_process_and_volumes(tmp_path):
    pid_file = tmp_path / "app.pid"
    ready = tmp_path / "allocated"
    # The app says when its 30 MB are allocated (touched, so resident).
    allocate = ("import sys, time; b = bytearray(30 << 20); open(sys.argv[1], 'w').close(); "
                "time.sleep(600)")
    with Child("app", [sys.executable, "-c", allocate, ready]) as app:
        pid_file.write_text(f"{app.pid}\n")
        col = SystemCollector(pid_file, {"database": tmp_path / "db" / "trading.db",
                                         "backups": tmp_path})
        wait_until(lambda: ready.exists() or app.poll() is not None, what="the app's allocation")
        got = samples(col)
        assert success(got, "system") == 1
        assert value(got, "pitwatch_app_process_resident_memory_bytes") > 30 << 20
        assert value(got, "pitwatch_app_process_open_fds") >= 3
        assert value(got, "pitwatch_app_process_cpu_seconds_total") >= 0
    assert 0 < value(got, "pitwatch_volume_free_bytes", volume="database") <= \
        value(got, "pitwatch_volume_size_bytes", volume="database")
    assert value(got, "pitwatch_host_cpus") == psutil.cpu_count()
    assert value(got, "pitwatch_host_cpu_seconds_total", mode="idle") > 0
    assert value(got, "pitwatch_host_memory_available_bytes") > 0
    # The app is gone now: its metrics go, the collector says so, the host metrics stay.
    got = samples(col)
    assert success(got, "system") == 0
    assert value(got, "pitwatch_app_process_resident_memory_bytes") is None
    assert value(got, "pitwatch_host_load1") is not None


def test_the_app_is_its_process_and_its_workers(tmp_path):
    """A gunicorn-like master whose forked worker holds the memory: both are counted."""
    pid_file, ready = tmp_path / "app.pid", tmp_path / "allocated"
    master = ("import os, sys, time\n"
              "if os.fork() == 0:\n"
              "    b = bytearray(40 << 20); open(sys.argv[1], 'w').close(); time.sleep(600)\n"
              "time.sleep(600)\n")
    with Child("app", [sys.executable, "-c", master, ready]) as app:
        pid_file.write_text(f"{app.pid}\n")
        wait_until(lambda: ready.exists() or app.poll() is not None, what="the worker's allocation")
        got = samples(SystemCollector(pid_file))
        worker = psutil.Process(app.pid).children()[0]
        alone = psutil.Process(app.pid).memory_info().rss
        assert value(got, "pitwatch_app_process_resident_memory_bytes") >= \
            alone + worker.memory_info().rss - (4 << 20)
        assert value(got, "pitwatch_app_process_resident_memory_bytes") > 40 << 20 > alone


def test_system_without_pid_file(tmp_path):
    got = samples(SystemCollector(tmp_path / "missing.pid", {}))
    assert success(got, "system") == 0


def test_market_matches_the_calendar():
    col = MarketCollector()
    assert value(samples(col), "pitwatch_market_open") is None  # before the calendar loads
    col.checks()[0].run_once()
    got = samples(col)
    assert success(got, "market") == 1
    assert value(got, "pitwatch_market_open") == (1 if market.is_open() else 0)


def test_market_window_agrees_with_is_open_at_session_edges():
    # Thanksgiving week 2026: an early close on Friday and the weekend.
    start = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc).timestamp()
    window = Window(open_intervals(horizon=4 * 86400, now=start))
    for hours in range(0, 4 * 24):
        for minute in (0, 59):
            t = start + hours * 3600 + minute * 60
            assert window.is_open(t) == market.is_open(datetime.fromtimestamp(t, timezone.utc)), t
    assert window.is_open(start - 3600) is None  # outside the window: unknown, not closed
