"""The demo trading app: a small Flask + SQLite futures trade log.

``create_app(config)`` builds it for the release ``releases/current`` points at (read
once, when a worker starts). ``serve(config)`` runs it under gunicorn in the
foreground, as a real platform would: a master holding the listening socket, with its
pid in ``platform.app_pid_file``, and worker processes that each import the app
(``preload_app`` off). So SIGHUP to the master is a graceful reload: new workers read
``releases/current`` afresh, the old ones finish their requests and exit, and the
socket never closes (``pitwatch demo reload-app``, the demo's ``reload_command``).
Outside the demo: ``gunicorn 'pitwatch.demo.app:from_env()'`` with ``PITWATCH_CONFIG`` set.

Endpoints: ``POST /login``, ``POST /api/trades``, ``GET /api/positions``,
``GET /api/chart/<symbol>?timeframe=1m|5m|1h|1d``, ``GET /health``, ``GET /metrics``.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import random
import re
import socket
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, g, jsonify, request
from werkzeug.security import check_password_hash, generate_password_hash

from pitwatch.core.config import Config
from pitwatch.demo import releases, store
from pitwatch.demo.instruments import INSTRUMENTS

log = logging.getLogger("pitwatch.demo.app")

SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# A request carrying this header with the value 500 is answered 500 by the API: the
# traffic generator's error mode (pitwatch.demo.traffic) burns the error budget with it.
FAULT_HEADER = "X-Pitwatch-Demo-Fault"
ACCOUNT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_QUANTITY = 10_000


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash("not-a-password")


class BadRequest(Exception):
    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


class NoMetrics:
    """Stands in for AppMetrics when the app runs uninstrumented (the benchmark's baseline)."""

    def __getattr__(self, name):
        return lambda *a, **k: None

    def db_query(self):
        return contextlib.nullcontext()


class AuthLog:
    """Failed logins as sshd/pam-style lines, the format log tailers and fail2ban know.

    The file is opened per line, so logrotate may move or truncate it at any time.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self.host = socket.gethostname().split(".")[0]
        self.lock = threading.Lock()

    def failure(self, reason: str, user: str, ip: str) -> None:
        if self.path is None:
            return
        user = re.sub(r"[^\x21-\x7e]", "?", user)[:64] or "?"  # no log injection
        stamp = datetime.now().strftime("%b %d %H:%M:%S")
        head = f"{stamp} {self.host} trading[{os.getpid()}]:"
        if reason == "unknown_user":
            line = f"{head} Failed password for invalid user {user} from {ip}"
        elif reason == "locked":
            line = (f"{head} pam_unix(trading:auth): authentication failure; "
                    f"rhost={ip} user={user} (account locked)")
        else:
            line = f"{head} Failed password for {user} from {ip}"
        with self.lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
            except OSError as exc:
                log.warning("cannot write auth log %s: %s", self.path, exc)


def _json_body() -> dict:
    data = request.get_json(silent=True)
    if data is None and request.form:
        data = request.form.to_dict()
    if not isinstance(data, dict):
        raise BadRequest("body", "expected a JSON object")
    return data


def _validate_trade(data: dict) -> dict:
    symbol = data.get("symbol")
    if not isinstance(symbol, str) or symbol not in INSTRUMENTS:
        raise BadRequest("symbol", f"expected one of {', '.join(INSTRUMENTS)}")
    side = data.get("side")
    if side not in ("buy", "sell"):
        raise BadRequest("side", "expected 'buy' or 'sell'")
    qty = data.get("quantity")
    if isinstance(qty, bool) or not isinstance(qty, int) or not 0 < qty <= MAX_QUANTITY:
        raise BadRequest("quantity", f"expected a whole number of contracts, 1 to {MAX_QUANTITY}")
    price = data.get("price")
    if isinstance(price, bool) or not isinstance(price, (int, float)) \
            or not math.isfinite(price) or price <= 0:
        raise BadRequest("price", "expected a positive number")
    tick = INSTRUMENTS[symbol].tick
    if abs(price / tick - round(price / tick)) > 1e-6:
        raise BadRequest("price", f"not a multiple of the tick size {tick:g}")
    account = data.get("account", "demo")
    if not isinstance(account, str) or not ACCOUNT.match(account):
        raise BadRequest("account", "expected 1-64 letters, digits, '_', '.' or '-'")
    return {"symbol": symbol, "side": side, "quantity": qty, "price": float(price),
            "account": account}


def create_app(config: Config, instrument: bool = True) -> Flask:
    plat = config.platform
    release = releases.current(plat.releases_dir)
    app = Flask("pitwatch.demo")
    app.json.sort_keys = False
    app.config["VERSION"] = release.version  # what the instrumentation reports
    if instrument:
        from pitwatch.exporters.flask import instrument as add_metrics

        # The one documented line, plus the listed symbols' series from the start
        # (so rate() has a 0 to start from).
        metrics = add_metrics(app, instruments=tuple(INSTRUMENTS))
    else:
        metrics = NoMetrics()
    app.extensions["pitwatch"] = {"release": release, "metrics": metrics}
    auth_log = AuthLog(config.security.auth_logs[0] if config.security.auth_logs else None)
    redis_client = None
    if plat.redis_url:
        import redis

        redis_client = redis.Redis.from_url(plat.redis_url, socket_timeout=1,
                                            socket_connect_timeout=1)
    last_db_log = {"kind": None, "at": 0.0}

    def db() -> sqlite3.Connection:
        if "db" not in g:
            g.db = store.connect(plat.database)
        return g.db

    @app.teardown_appcontext
    def _close_db(exc=None):
        conn = g.pop("db", None)
        if conn is not None:
            conn.close()

    @app.before_request
    def _release_faults():
        # A bad release misbehaves where users notice: the API, not /health.
        if not request.path.startswith("/api/"):
            return None
        if release.extra_latency_ms:
            time.sleep(release.extra_latency_ms / 1000 * random.uniform(0.8, 1.2))
        if release.error_rate and random.random() < release.error_rate:
            return jsonify(error="internal error", version=release.version), 500
        if request.headers.get(FAULT_HEADER) == "500":
            return jsonify(error="injected fault", version=release.version), 500
        return None

    @app.after_request
    def _headers(resp):
        for name, value in SECURITY_HEADERS.items():
            resp.headers.setdefault(name, value)
        return resp

    @app.errorhandler(BadRequest)
    def _bad_request(exc: BadRequest):
        return jsonify(error=str(exc), field=exc.field), 400

    @app.errorhandler(sqlite3.Error)
    def _db_error(exc: sqlite3.Error):
        kind = store.error_kind(exc)
        metrics.db_error(kind)
        now = time.monotonic()
        # One line per kind change or per minute, not one per request of a busy app.
        if kind != last_db_log["kind"] or now - last_db_log["at"] > 60:
            log.error("database error (%s): %s", kind, exc)
            last_db_log.update(kind=kind, at=now)
        status = 500 if kind == "other" else 503
        return jsonify(error=f"database error: {kind}"), status

    @app.get("/")
    def index():
        return jsonify(service="demo futures trading platform", version=release.version,
                       endpoints=["POST /login", "POST /api/trades", "GET /api/positions",
                                  "GET /api/chart/<symbol>?timeframe=1m|5m|1h|1d",
                                  "GET /health", "GET /metrics"])

    @app.post("/login")
    def login():
        data = _json_body()
        user, password = data.get("username"), data.get("password")
        if not isinstance(user, str) or not user:
            raise BadRequest("username", "required")
        if not isinstance(password, str) or not password:
            raise BadRequest("password", "required")
        with metrics.db_query():
            row = db().execute("select password_hash, locked from users where username = ?",
                               (user,)).fetchone()
        if row is None:
            check_password_hash(_dummy_hash(), password)  # same cost: timing hides who exists
            reason = "unknown_user"
        elif row["locked"]:
            reason = "locked"
        elif not check_password_hash(row["password_hash"], password):
            reason = "bad_password"
        else:
            return jsonify(ok=True, username=user)
        metrics.login_failure(reason)
        auth_log.failure(reason, user, request.remote_addr or "?")
        # The same answer for every reason: no hint which usernames exist.
        return jsonify(error="invalid username or password"), 401

    @app.post("/api/trades")
    def create_trade():
        trade = _validate_trade(_json_body())
        with metrics.db_query():
            result = store.record_trade(db(), **trade)
        metrics.trade_processed(trade["symbol"])
        if result["position_opened"]:
            metrics.position_opened()
        return jsonify(**trade, **result), 201

    @app.get("/api/positions")
    def positions():
        account = request.args.get("account")
        if account is not None and not ACCOUNT.match(account):
            raise BadRequest("account", "expected 1-64 letters, digits, '_', '.' or '-'")
        with metrics.db_query():
            rows = store.open_positions(db(), account)
        return jsonify(positions=rows, count=len(rows))

    @app.get("/api/chart/<symbol>")
    def chart(symbol: str):
        timeframe = request.args.get("timeframe", "1m")
        metrics.chart_request(timeframe)
        if timeframe not in store.TIMEFRAME_SECONDS:
            raise BadRequest("timeframe", f"expected one of {', '.join(store.TIMEFRAME_SECONDS)}")
        if symbol not in INSTRUMENTS:
            return jsonify(error=f"unknown symbol {symbol[:16]!r}", field="symbol"), 404
        with metrics.db_query():
            bars = store.ohlc(db(), symbol, timeframe)
        return jsonify(symbol=symbol, timeframe=timeframe, bars=bars)

    @app.get("/health")
    def health():
        checks, problems = {}, []
        try:
            with metrics.db_query():
                checks["database"] = store.health_probe(db())
        except sqlite3.Error as exc:
            metrics.db_error(store.error_kind(exc))
            checks["database"] = "fail"
            problems.append(f"database: {exc}")
        if redis_client is not None:
            try:
                redis_client.ping()
                checks["redis"] = "ok"
            except Exception as exc:  # any client error means "not usable"
                checks["redis"] = "fail"
                problems.append(f"redis: {exc}")
        body = {"status": "fail" if problems else "ok", "version": release.version,
                "checks": checks}
        if problems:
            body["reason"] = "; ".join(problems)
            return jsonify(body), 503
        return jsonify(body)

    return app


def from_env() -> Flask:
    """Factory for gunicorn: ``gunicorn 'pitwatch.demo.app:from_env()'``."""
    from pitwatch.core import config

    return create_app(config.load(os.environ["PITWATCH_CONFIG"]))


def listen_address(app_url: str) -> tuple[str, int]:
    parts = urlsplit(app_url)
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


def metrics_dir(config: Config) -> Path:
    """Where the workers write their samples, summed by /metrics on any of them."""
    base = config.source.parent if config.source else Path.cwd()
    return base / "run" / "app-metrics"


def serve(config: Config, workers: int = 2, threads: int = 8) -> int:
    """Run the app under gunicorn until SIGTERM/SIGINT; keep the pid file while up.

    Connections are closed after each response (keepalive 0): a kept-alive connection
    a stopping worker closes could meet a client's next request on the way and fail
    it, so a reload could not promise that no request fails.
    """
    # Before anything imports prometheus_client: it picks its value class once.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir(config)))
    from gunicorn.app.base import BaseApplication

    from pitwatch.demo import gunicorn_conf

    host, port = listen_address(config.platform.app_url)
    pid_file = config.platform.app_pid_file
    master = os.getpid()

    def when_ready(server) -> None:  # listening: the pid file says the app runs
        if pid_file:
            pid_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = pid_file.with_suffix(".tmp")
            tmp.write_text(f"{master}\n")
            os.replace(tmp, pid_file)
        log.info("serving on http://%s:%d (pid %d, %d workers)", host, port, master, workers)

    class Server(BaseApplication):
        def load_config(self):
            settings = {
                "bind": f"{host}:{port}", "workers": max(1, workers), "threads": max(1, threads),
                "worker_class": "gthread", "preload_app": False, "keepalive": 0,
                # Old workers finish their requests within this after a reload or a stop.
                "graceful_timeout": 5, "timeout": 30, "accesslog": None,
                "loglevel": gunicorn_conf.loglevel, "proc_name": "pitwatch-demo-app",
                "on_starting": gunicorn_conf.on_starting, "child_exit": gunicorn_conf.child_exit,
                "when_ready": when_ready,
                # X-Forwarded-For is believed only from a proxy on this host.
                "forwarded_allow_ips": "127.0.0.1",
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):  # in each worker, at its start: the release `current` points at now
            return _behind_local_proxy(create_app(config))

    try:
        Server().run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    finally:
        # Workers leave through here too: only the master's own pid file goes.
        if pid_file and os.getpid() == master and pid_file.exists() \
                and pid_file.read_text().strip() == str(master):
            pid_file.unlink()
    return 0


def _behind_local_proxy(app: Flask) -> Flask:
    """The client address from X-Forwarded-For, believed only from a proxy on this host
    (the auth log and the login-failure alerts name the client)."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    direct, proxied = app.wsgi_app, ProxyFix(app.wsgi_app, x_for=1)

    def wsgi(environ, start_response):
        trusted = environ.get("REMOTE_ADDR") == "127.0.0.1"
        return (proxied if trusted else direct)(environ, start_response)

    app.wsgi_app = wsgi
    return app
