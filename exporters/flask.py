"""Prometheus instrumentation of the trading Flask app: ``instrument(app)``.

One line in the app's factory or module::

    from pitwatch.exporters.flask import instrument
    metrics = instrument(app)

adds request metrics and ``/metrics`` (docs/metrics.md, "App"). Every name starts with
``pitwatch_app_``, so none collides with metrics the app already has — not its own
``trading_*`` counters, not ``flask_*`` from its own prometheus-flask-exporter. In
gunicorn multiprocess mode every metric of the process lands in one folder and
families of the same name merge, so a shared name would silently mix two meanings.

HTTP metrics come from prometheus-flask-exporter, grouped by ``url_rule`` so a path
with ids (``/api/chart/ES``) stays one series (``/api/chart/<symbol>``). An app that
runs its own prometheus-flask-exporter keeps it: both count every request.

Business counters are optional. Counts the database already knows (trades, open
positions) come from ``trading_queries`` in pitwatch.yml, measured by the exporter
without touching the app. What only the app sees is counted by calling the methods
of the returned :class:`AppMetrics` where it happens::

    metrics.trade_processed(symbol)      # pitwatch_app_trades_processed_total{instrument}
    metrics.login_failure("bad_password")
    with metrics.db_query():
        conn.execute(...)

Uncalled, those counters stay at 0. Every label stays bounded: instruments are
normalised (contract month stripped) and capped, the other labels take fixed values.

``/metrics`` taken already: if the app serves that path itself (before or after this
call), ``instrument`` raises :class:`MetricsPathTaken` rather than hide one set of
metrics behind the other; pass ``metrics_path="/metrics/pitwatch"`` and point
Prometheus there (pitwatch.yml ``monitoring.jobs.app.metrics_path``).

Each call gets its own ``CollectorRegistry``, so several apps can be instrumented in
one process (tests do) without "Duplicated timeseries" errors.

Gunicorn (or any pre-fork server): set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
folder before the server starts. Every worker then writes its samples there and
``/metrics`` on any worker aggregates all of them (the app's own metrics in that folder
too, under their own names). Counters and histograms are
summed; ``pitwatch_app_build_info`` uses ``livemax`` so a replaced worker's version
disappears. Add this hook to the gunicorn config so dead workers' live gauges go::

    from pitwatch.exporters.flask import mark_process_dead
    def child_exit(server, worker):
        mark_process_dead(worker.pid)
"""
from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass

from flask import Flask, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_flask_exporter import PrometheusMetrics

from pitwatch.core import slo

PREFIX = "pitwatch_app"
TIMEFRAMES = ("1m", "5m", "1h", "1d")
LOGIN_FAILURE_REASONS = ("bad_password", "unknown_user", "locked")
DB_ERROR_KINDS = ("corruption", "locked", "other")
OTHER = "other"
UNKNOWN_VERSION = "unknown"
ENDPOINT = "pitwatch_metrics"  # not the library's "prometheus_metrics", which the app may have

# A contract month at the end of a symbol: "MNQ SEP25", "ES-DEC2025" (month name, any
# case, 2 or 4 digit year) or a CME month code with its year: "ESZ5", "NQH26", "MNQ U25".
# Careful not to over-strip: a month code counts only after a root of two characters
# or more and with a year 0-9 or 20-39, so roots that end in a code letter (ZN, 6M),
# the E-mini yen J7 and index names like HK50 or CH20 stay whole; so does a value that
# would be nothing but a suffix.
CONTRACT_MONTH = (r"(?:[\s._/-]*(?i:JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)"
                  r"[\s'._-]?(?:\d{4}|\d{2})"
                  r"|(?<=\w\w)[\s._/-]?[FGHJKMNQUVXZ](?:[23]\d|\d))$")
# Distinct instruments kept as label values (per process); any further one is "other".
MAX_INSTRUMENTS = 50
MAX_LABEL_LENGTH = 32

# Buckets that fit the SLOs (pitwatch.core.slo): the latency threshold (0.2 s, which
# client_python's defaults lack) and 0.05 are bounds, so rules and boards read them exactly.
HTTP_BUCKETS = slo.HTTP_BUCKETS
DB_QUERY_BUCKETS = slo.DB_QUERY_BUCKETS


class MetricsPathTaken(RuntimeError):
    """The app already serves pitwatch's metrics path; one would hide the other."""


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


def mark_process_dead(pid: int) -> None:
    """Gunicorn ``child_exit`` hook: drop a dead worker's live gauges."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def _bounded(value: str, allowed: tuple[str, ...]) -> str:
    return value if value in allowed else OTHER


class InstrumentLabel:
    """Turns whatever symbol the app has into a bounded ``instrument`` label value.

    The contract month is stripped (``MNQ SEP25`` and ``MNQ DEC25`` are one series,
    ``MNQ``), then the first ``limit`` distinct roots are kept and any later one is
    ``other``. No fixed list: the platform's instruments are whatever it trades. Under
    gunicorn each worker keeps its own first ``limit``, so Prometheus sees at most
    ``limit`` x workers series — still a bound.
    """

    def __init__(self, limit: int = MAX_INSTRUMENTS, contract_month: str | None = CONTRACT_MONTH):
        self.limit = limit
        self.pattern = re.compile(contract_month) if contract_month else None
        self.kept: set[str] = set()
        self.lock = threading.Lock()  # threaded servers (waitress) count concurrently

    def normalise(self, value: str) -> str:
        value = str(value).strip()
        if self.pattern is not None:
            root = self.pattern.sub("", value, count=1).strip()
            value = root or value
        # Empty or absurdly long values are input errors, not instruments.
        return value if 0 < len(value) <= MAX_LABEL_LENGTH else OTHER

    def __call__(self, value: str) -> str:
        value = self.normalise(value)
        if value in self.kept or value == OTHER:
            return value
        with self.lock:
            if len(self.kept) < self.limit:
                self.kept.add(value)
                return value
        return OTHER


@dataclass
class AppMetrics:
    """The app's own metrics; call the methods, not the raw metrics, to keep labels bounded.

    All optional: call them where the app does the thing (see the module docstring).
    """

    registry: CollectorRegistry
    http: PrometheusMetrics
    instrument_label: InstrumentLabel
    timeframes: tuple[str, ...]
    trades_processed: Counter
    positions_opened: Counter
    chart_requests: Counter
    login_failures: Counter
    db_errors: Counter
    db_query_duration: Histogram
    build_info: Gauge

    def trade_processed(self, instrument: str) -> None:
        self.trades_processed.labels(self.instrument_label(instrument)).inc()

    def position_opened(self) -> None:
        self.positions_opened.inc()

    def chart_request(self, timeframe: str) -> None:
        self.chart_requests.labels(_bounded(timeframe, self.timeframes)).inc()

    def login_failure(self, reason: str) -> None:
        self.login_failures.labels(_bounded(reason, LOGIN_FAILURE_REASONS)).inc()

    def db_error(self, kind: str) -> None:
        self.db_errors.labels(_bounded(kind, DB_ERROR_KINDS)).inc()

    def db_query(self) -> AbstractContextManager:
        """``with metrics.db_query(): conn.execute(...)`` times one query."""
        return self.db_query_duration.time()


class _HttpMetrics(PrometheusMetrics):
    """prometheus-flask-exporter that counts every request even beside the app's own.

    The library marks a request as counted on the request object (``prom_<step>``),
    and those marks are shared by every instance on the app: with two instances only
    the one whose hook runs first would count, the other would stay at 0 without a
    word. Marks of our own keep both counting.
    """

    @staticmethod
    def _not_yet_handled(tracking_key):
        return PrometheusMetrics._not_yet_handled(f"{PREFIX}_{tracking_key}")


def app_version(app: Flask) -> str:
    """``app.config["VERSION"]``, else the version of the distribution that installed
    the app's top-level package, else ``"unknown"``."""
    configured = app.config.get("VERSION")
    if configured:
        return str(configured)
    top = app.import_name.partition(".")[0]
    for dist in importlib.metadata.packages_distributions().get(top, ()):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return UNKNOWN_VERSION


def _taken(app: Flask, path: str, by: str) -> MetricsPathTaken:
    return MetricsPathTaken(
        f"the app {app.name!r} serves {path} itself ({by}); pitwatch's metrics on the same "
        f"path would hide its own or be hidden. Call instrument(app, "
        f"metrics_path='/metrics/pitwatch') and scrape that path "
        f"(pitwatch.yml: monitoring.jobs.app.metrics_path).")


def _check_free(app: Flask, path: str) -> None:
    if ENDPOINT in app.view_functions:
        raise RuntimeError(f"instrument() already ran on the app {app.name!r}: "
                           f"keep the AppMetrics it returned")
    for rule in app.url_map.iter_rules():
        if rule.rule == path:
            raise _taken(app, path, f"endpoint {rule.endpoint!r}")


def _guard_later_routes(app: Flask, path: str) -> None:
    """Fail on a route for ``path`` the app adds after us.

    Routes, blueprints and ``add_url_rule`` all end in ``app.add_url_rule``; Flask
    matches the first of two equal rules, so a later ``/metrics`` of the app would
    otherwise be unreachable without a word.
    """
    add_url_rule = app.add_url_rule

    @functools.wraps(add_url_rule)
    def guarded(rule, *args, **kwargs):
        if rule == path:
            raise _taken(app, path, "a route added after instrument()")
        return add_url_rule(rule, *args, **kwargs)

    app.add_url_rule = guarded


def instrument(app: Flask, version: str | None = None, *, instruments: tuple[str, ...] = (),
               max_instruments: int = MAX_INSTRUMENTS,
               contract_month: str | None = CONTRACT_MONTH,
               timeframes: tuple[str, ...] = TIMEFRAMES,
               metrics_path: str = "/metrics") -> AppMetrics:
    """Add HTTP and business metrics and a metrics endpoint to ``app``.

    ``version``: the release for ``pitwatch_app_build_info``; default :func:`app_version`.
    ``instruments``: symbols whose series exist from the start (at 0), so ``rate()``
    works before the first trade; they count towards ``max_instruments``.
    ``contract_month``: regex of the suffix stripped from a symbol (None keeps symbols
    as they are). ``metrics_path``: where Prometheus scrapes; raises
    :class:`MetricsPathTaken` if the app has a route there already.
    """
    _check_free(app, metrics_path)
    registry = CollectorRegistry()
    # path=None: the library would name its endpoint "prometheus_metrics", which an app
    # with its own prometheus-flask-exporter has already; ours below has ENDPOINT.
    http = _HttpMetrics(app, path=None, group_by="url_rule", registry=registry,
                        defaults_prefix=PREFIX, buckets=HTTP_BUCKETS)

    @http.do_not_track()
    def pitwatch_metrics():
        # Under PROMETHEUS_MULTIPROC_DIR this reads every worker's samples from the folder.
        body, content_type = http.generate_metrics(request.headers.get("Accept"))
        return body, 200, {"Content-Type": content_type}

    app.add_url_rule(metrics_path, ENDPOINT, pitwatch_metrics, methods=["GET"])
    _guard_later_routes(app, metrics_path)

    timeframes = tuple(timeframes)
    m = AppMetrics(
        registry=registry,
        http=http,
        instrument_label=InstrumentLabel(max_instruments, contract_month),
        timeframes=timeframes,
        trades_processed=Counter(
            f"{PREFIX}_trades_processed", "Trades accepted and stored, by instrument "
            "(contract month stripped).", ["instrument"], registry=registry),
        positions_opened=Counter(
            f"{PREFIX}_positions_opened", "Positions opened by a trade.", registry=registry),
        chart_requests=Counter(
            f"{PREFIX}_chart_requests", "Chart (OHLC) requests, by timeframe.",
            ["timeframe"], registry=registry),
        login_failures=Counter(
            f"{PREFIX}_login_failures", "Failed logins, by reason.", ["reason"],
            registry=registry),
        db_errors=Counter(
            f"{PREFIX}_db_errors", "SQLite errors met while serving requests, by kind.",
            ["kind"], registry=registry),
        db_query_duration=Histogram(
            f"{PREFIX}_db_query_duration_seconds", "Duration of the app's SQLite queries.",
            buckets=DB_QUERY_BUCKETS, registry=registry),
        build_info=Gauge(
            f"{PREFIX}_build_info", "The release the app serves (always 1).", ["version"],
            registry=registry, multiprocess_mode="livemax"),
    )
    # Every known series exists from the start, so rate() and absent() behave.
    for name in instruments:
        m.trades_processed.labels(m.instrument_label(name))
    m.trades_processed.labels(OTHER)
    for tf in timeframes + (OTHER,):
        m.chart_requests.labels(tf)
    for reason in LOGIN_FAILURE_REASONS:
        m.login_failures.labels(reason)
    for kind in DB_ERROR_KINDS:
        m.db_errors.labels(kind)
    m.build_info.labels(version or app_version(app)).set(1)
    return m
