"""Prometheus instrumentation of the trading Flask app: ``instrument(app, version)``.

HTTP metrics come from prometheus-flask-exporter, grouped by ``url_rule`` so a path
with ids (``/api/chart/ES``) stays one series (``/api/chart/<symbol>``). The business
metrics of docs/metrics.md live on the returned :class:`AppMetrics`, whose methods
bound every label value: anything outside the fixed lists is counted as ``other``.

Each call gets its own ``CollectorRegistry``, so several apps can be instrumented in
one process (tests do) without "Duplicated timeseries" errors.

Gunicorn (or any pre-fork server): set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
folder before the server starts. Every worker then writes its samples there and
``/metrics`` on any worker aggregates all of them. Counters and histograms are
summed; ``trading_build_info`` uses ``livemax`` so a replaced worker's version
disappears. Add this hook to the gunicorn config so dead workers' live gauges go::

    from pitwatch.exporters.flask import mark_process_dead
    def child_exit(server, worker):
        mark_process_dead(worker.pid)
"""
from __future__ import annotations

import os
from contextlib import AbstractContextManager
from dataclasses import dataclass

from flask import Flask
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_flask_exporter import PrometheusMetrics

# CME futures the platform lists; other symbols are counted as "other".
INSTRUMENTS = ("ES", "NQ", "YM", "RTY", "CL", "NG", "GC", "SI", "ZN", "ZB", "6E", "6J")
TIMEFRAMES = ("1m", "5m", "1h", "1d")
LOGIN_FAILURE_REASONS = ("bad_password", "unknown_user", "locked")
DB_ERROR_KINDS = ("corruption", "locked", "other")
OTHER = "other"

# SQLite on local disk: most queries take well under a millisecond; the SLO is p99 < 50 ms.
DB_QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


def mark_process_dead(pid: int) -> None:
    """Gunicorn ``child_exit`` hook: drop a dead worker's live gauges."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def _bounded(value: str, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else OTHER


@dataclass
class AppMetrics:
    """The app's own metrics; call the methods, not the raw metrics, to keep labels bounded."""

    registry: CollectorRegistry
    http: PrometheusMetrics
    instruments: tuple[str, ...]
    trades_processed: Counter
    positions_opened: Counter
    chart_requests: Counter
    login_failures: Counter
    db_errors: Counter
    db_query_duration: Histogram
    build_info: Gauge

    def trade_processed(self, instrument: str) -> None:
        self.trades_processed.labels(_bounded(instrument, self.instruments)).inc()

    def position_opened(self) -> None:
        self.positions_opened.inc()

    def chart_request(self, timeframe: str) -> None:
        self.chart_requests.labels(_bounded(timeframe, TIMEFRAMES)).inc()

    def login_failure(self, reason: str) -> None:
        self.login_failures.labels(_bounded(reason, LOGIN_FAILURE_REASONS)).inc()

    def db_error(self, kind: str) -> None:
        self.db_errors.labels(_bounded(kind, DB_ERROR_KINDS)).inc()

    def db_query(self) -> AbstractContextManager:
        """``with metrics.db_query(): conn.execute(...)`` times one query."""
        return self.db_query_duration.time()


def instrument(app: Flask, version: str, instruments: tuple[str, ...] = INSTRUMENTS,
               metrics_path: str = "/metrics") -> AppMetrics:
    """Add HTTP and business metrics and a ``/metrics`` endpoint to ``app``."""
    registry = CollectorRegistry()
    kwargs = dict(group_by="url_rule", path=metrics_path, registry=registry)
    if multiprocess_dir():
        from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

        # Collects from the shared folder on each scrape, whichever worker answers.
        http = GunicornInternalPrometheusMetrics(app, **kwargs)
    else:
        http = PrometheusMetrics(app, **kwargs)

    instruments = tuple(instruments)
    m = AppMetrics(
        registry=registry,
        http=http,
        instruments=instruments,
        trades_processed=Counter(
            "trading_trades_processed", "Trades accepted and stored, by instrument.",
            ["instrument"], registry=registry),
        positions_opened=Counter(
            "trading_positions_opened", "Positions opened by a trade.", registry=registry),
        chart_requests=Counter(
            "trading_chart_requests", "Chart (OHLC) requests, by timeframe.",
            ["timeframe"], registry=registry),
        login_failures=Counter(
            "trading_login_failures", "Failed logins, by reason.", ["reason"], registry=registry),
        db_errors=Counter(
            "trading_db_errors", "SQLite errors met while serving requests, by kind.",
            ["kind"], registry=registry),
        db_query_duration=Histogram(
            "trading_db_query_duration_seconds", "Duration of the app's SQLite queries.",
            buckets=DB_QUERY_BUCKETS, registry=registry),
        build_info=Gauge(
            "trading_build_info", "The release the app serves (always 1).", ["version"],
            registry=registry, multiprocess_mode="livemax"),
    )
    # Every known series exists from the start, so rate() and absent() behave.
    for name in instruments + (OTHER,):
        m.trades_processed.labels(name)
    for tf in TIMEFRAMES + (OTHER,):
        m.chart_requests.labels(tf)
    for reason in LOGIN_FAILURE_REASONS:
        m.login_failures.labels(reason)
    for kind in DB_ERROR_KINDS:
        m.db_errors.labels(kind)
    m.build_info.labels(version).set(1)
    return m
