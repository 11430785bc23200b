"""Fixture builders shared by the exporter tests: real SQLite files, certificates, servers.

Only helpers live here (no tests); the test modules import them by name.
"""
from __future__ import annotations

import datetime as dt
import http.server
import sqlite3
import ssl
import threading
import time
from pathlib import Path

import yaml

from pitwatch.core.procs import Child, free_port, wait_until

SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=63072000",
    "Content-Security-Policy": "default-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

QUERIES = [
    {"name": "last_trade_timestamp_seconds", "sql": "select max(ts) from trades"},
    {"name": "open_positions",
     "sql": "select symbol, count(*) from positions where closed_at is null group by symbol"},
]


def make_db(path: Path, trades: int = 2000, wal: bool = True) -> Path:
    """A small trading database: trades and positions, committed."""
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode={'WAL' if wal else 'DELETE'}")
    conn.execute("create table trades(id integer primary key, symbol text, ts real, qty int, note text)")
    conn.execute("create table positions(id integer primary key, symbol text, closed_at real)")
    now = time.time()
    conn.executemany("insert into trades(symbol, ts, qty, note) values (?, ?, ?, ?)",
                     [(("ES", "NQ", "CL")[i % 3], now - i, i % 7 + 1, "x" * 100) for i in range(trades)])
    conn.executemany("insert into positions(symbol, closed_at) values (?, ?)",
                     [("ES", None), ("NQ", None), ("NQ", None), ("CL", now)])
    conn.commit()
    conn.close()
    return path


def overwrite_pages(path: Path, first: int, count: int) -> None:
    """Scribble over ``count`` pages from page ``first`` (1-based): a damaged file."""
    conn = sqlite3.connect(path)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(path, "r+b") as fh:
        fh.seek((first - 1) * page)
        fh.write(b"\xde\xad\xbe\xef" * (page * count // 4))


def write_config(folder: Path, database: Path, **sections) -> Path:
    """A pitwatch.yml in ``folder``; keyword sections replace or extend the defaults."""
    doc = {"platform": {"database": str(database), "app_url": "http://127.0.0.1:9"},
           "trading_queries": QUERIES,
           "security": {"firewall": "off"}}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    path = folder / "pitwatch.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def samples(collector) -> dict[tuple[str, tuple], float]:
    """One collection: {(sample name, sorted label items): value}."""
    out = {}
    for family in collector.collect():
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(collected: dict, name: str, **labels) -> float | None:
    return collected.get((name, tuple(sorted(labels.items()))))


def success(collected: dict, collector: str) -> float | None:
    return value(collected, "pitwatch_collector_success", collector=collector)


def make_cert(folder: Path, name: str, days: float) -> tuple[Path, Path, float]:
    """A self-signed certificate for 127.0.0.1 valid ``days`` more: (cert, key, not-after)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    not_after = now + dt.timedelta(days=days)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, not_after.timestamp()


class HTTPServer:
    """A real threaded HTTP(S) server on 127.0.0.1 answering every GET with ``headers``."""

    def __init__(self, headers: dict[str, str] | None = None, cert: tuple[Path, Path] | None = None):
        extra = dict(headers or {})

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        scheme = "http"
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*map(str, cert))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def start_redis(folder: Path, *extra: str) -> tuple[Child, str]:
    port = free_port()
    child = Child("redis", ["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--daemonize", "no", "--dir", folder, *extra],
                  log=folder / "redis.log")
    import socket

    def ready() -> bool:
        if child.poll() is not None:
            raise RuntimeError(f"redis-server exited{child.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    wait_until(ready, 15, what="redis-server")
    return child, f"redis://127.0.0.1:{port}/0"
