"""A trading journal written by another team, and the proxy in front of it.

    python journal_app.py app --db DB --port PORT --fault-file PATH [--redis URL]
    python journal_app.py proxy --port PORT --upstream http://127.0.0.1:APP_PORT

The journal knows nothing of pitwatch and imports nothing of it: Flask + SQLite, a
Redis cache for charts when one is given, its own /metrics (prometheus_client, its own
names and labels), its own /health. Trades arrive once a day from the broker's
statement (``daily_import``), with naive text timestamps and instrument names that
carry the contract month ("MNQ SEP25"). It has no login. Security headers are not its
business: the proxy adds them, as nginx would.

While the file given as --fault-file exists, every /api route fails with an unhandled
exception (a 500), as when a release breaks the store layer.
"""
from __future__ import annotations

import argparse
import http.client
import json
import random
import sqlite3
import sys
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

SCHEMA = """
create table if not exists accounts (
    code text primary key,
    name text not null
);
create table if not exists trades (
    id integer primary key,
    account text not null references accounts(code),
    instrument text not null,                 -- 'MNQ SEP25': root symbol and contract month
    side text not null check (side in ('BUY', 'SELL')),
    quantity integer not null,
    price real not null,
    executed_at text not null                 -- '2026-12-02 09:30:00', UTC, no zone
);
create index if not exists trades_executed_at on trades(executed_at);
create table if not exists imports (
    session text primary key,                 -- the statement's trading day
    imported_at text not null,
    trades integer not null
);
"""
ACCOUNTS = {"ACC-001": "Main", "ACC-002": "Swing", "PROP-7": "Prop desk"}
INSTRUMENTS = {"MNQ SEP25": 19500.0, "ES DEC25": 5900.0, "MES DEC25": 5900.0,
               "NQ DEC25": 21000.0, "CL JAN26": 71.5}
STAMP = "%Y-%m-%d %H:%M:%S"
# The statement of a session comes in a few hours after its last fill.
IMPORT_DELAY = timedelta(hours=3)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def daily_import(conn: sqlite3.Connection, session_end: datetime, fills: int = 3000,
                 seed: int = 7) -> dict[str, int]:
    """Bulk-insert one session's fills (the 23 h before ``session_end``); per account.

    Idempotent per session, like a nightly job that may be re-run.
    """
    session = session_end.strftime("%Y-%m-%d")
    if conn.execute("select 1 from imports where session = ?", (session,)).fetchone():
        return {}
    rng = random.Random(seed)
    rows, per_account = [], {code: 0 for code in ACCOUNTS}
    start = session_end - timedelta(hours=23)
    for i in range(fills):
        account = rng.choice(list(ACCOUNTS))
        instrument = rng.choice(list(INSTRUMENTS))
        price = INSTRUMENTS[instrument] * (1 + rng.uniform(-0.01, 0.01))
        at = start + timedelta(seconds=(i + 1) * 23 * 3600 / fills)
        rows.append((account, instrument, rng.choice(("BUY", "SELL")), rng.randint(1, 10),
                     round(price, 2), at.strftime(STAMP)))
        per_account[account] += 1
    with conn:
        conn.executemany("insert or ignore into accounts(code, name) values (?, ?)",
                         ACCOUNTS.items())
        conn.executemany("insert into trades(account, instrument, side, quantity, price, "
                         "executed_at) values (?, ?, ?, ?, ?, ?)", rows)
        conn.execute("insert into imports values (?, ?, ?)",
                      (session, utcnow().strftime(STAMP), len(rows)))
    return per_account


def create_app(db: str, fault_file: str, redis_url: str | None = None):
    from flask import Flask, abort, g, jsonify, request
    from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

    app = Flask("journal")
    processed = Counter("trading_trades_processed", "Trades imported from statements",
                        ["account"])
    charts = Counter("trading_chart_requests", "Chart requests", ["symbol"])
    cache = None
    if redis_url:
        import redis

        cache = redis.Redis.from_url(redis_url, socket_timeout=1)

    conn = sqlite3.connect(db)
    conn.execute("pragma journal_mode=wal")
    conn.executescript(SCHEMA)
    for account, n in daily_import(conn, utcnow() - IMPORT_DELAY).items():
        processed.labels(account).inc(n)
    conn.close()

    def database() -> sqlite3.Connection:
        if "db" not in g:
            g.db = sqlite3.connect(db, timeout=5)
            g.db.row_factory = sqlite3.Row
        return g.db

    @app.teardown_appcontext
    def close(_exc):
        conn = g.pop("db", None)
        if conn is not None:
            conn.close()

    @app.before_request
    def store_layer():
        if request.path.startswith("/api/") and Path(fault_file).exists():
            raise RuntimeError("journal store unavailable")

    @app.get("/")
    def index():
        n = database().execute("select count(*) from trades").fetchone()[0]
        last = database().execute("select max(session) from imports").fetchone()[0]
        return f"<h1>Trading journal</h1><p>{n} trades, last statement {last}</p>"

    @app.get("/health")
    def health():
        try:
            database().execute("select 1").fetchone()
        except sqlite3.Error as exc:
            return jsonify(status="down", error=str(exc)), 503
        return jsonify(status="ok")

    @app.get("/metrics")
    def metrics():
        return generate_latest(), 200, {"Content-Type": CONTENT_TYPE_LATEST}

    @app.get("/api/trades")
    def trades():
        limit = min(int(request.args.get("limit", 50)), 500)
        sql, args = "select * from trades", []
        if request.args.get("account"):
            sql, args = sql + " where account = ?", [request.args["account"]]
        rows = database().execute(sql + " order by executed_at desc limit ?", [*args, limit])
        return jsonify([dict(r) for r in rows])

    @app.get("/api/chart/<path:symbol>")
    def chart(symbol: str):
        if symbol not in INSTRUMENTS:
            abort(404)
        charts.labels(symbol).inc()
        key = f"journal:chart:{symbol}"
        if cache is not None:
            try:
                hit = cache.get(key)
                if hit:
                    return app.response_class(hit, mimetype="application/json")
            except Exception:  # a cache is optional: go to the database
                pass
        since = (utcnow() - timedelta(days=2)).strftime(STAMP)
        bars = database().execute(
            "select substr(executed_at, 1, 13) || ':00' as hour, min(price) as low, "
            "max(price) as high, sum(quantity) as volume from trades "
            "where executed_at >= ? and instrument = ? group by hour order by hour",
            (since, symbol))
        body = json.dumps([dict(b) for b in bars])
        if cache is not None:
            try:
                cache.set(key, body, ex=30)
            except Exception:
                pass
        return app.response_class(body, mimetype="application/json")

    @app.get("/api/summary")
    def summary():
        rows = database().execute(
            "select session, trades, imported_at from imports order by session desc limit 7")
        return jsonify([dict(r) for r in rows])

    return app


# -- the proxy --------------------------------------------------------------------------
SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailers", "transfer-encoding", "upgrade", "server", "date", "content-length"}


def proxy_handler(upstream: str):
    up = urlsplit(upstream)

    class Proxy(BaseHTTPRequestHandler):
        def _forward(self, send_body: bool):
            try:
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=10)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in HOP_BY_HOP | {"host"}}
                headers["X-Forwarded-For"] = self.client_address[0]
                conn.request(self.command, self.path, headers=headers)
                resp = conn.getresponse()
                status, body = resp.status, resp.read()
                got = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
                conn.close()
            except OSError as exc:
                status, body, got = 502, f"bad gateway: {exc}\n".encode(), []
            self.send_response(status)
            for k, v in got:
                self.send_header(k, v)
            for k, v in SECURITY_HEADERS.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def do_GET(self):
            self._forward(True)

        def do_HEAD(self):
            self._forward(False)

        def log_message(self, fmt, *args):
            sys.stderr.write("proxy: " + fmt % args + "\n")

    return Proxy


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    app_args = sub.add_parser("app")
    app_args.add_argument("--db", required=True)
    app_args.add_argument("--port", type=int, required=True)
    app_args.add_argument("--fault-file", required=True)
    app_args.add_argument("--redis")
    proxy_args = sub.add_parser("proxy")
    proxy_args.add_argument("--port", type=int, required=True)
    proxy_args.add_argument("--upstream", required=True)
    args = parser.parse_args(argv)
    if args.what == "app":
        import waitress

        waitress.serve(create_app(args.db, args.fault_file, args.redis), host="127.0.0.1",
                       port=args.port, threads=8)
    else:
        server = ThreadingHTTPServer(("127.0.0.1", args.port), proxy_handler(args.upstream))
        server.daemon_threads = True
        server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
