"""Fixture builders: real SQLite files, certificates and pitwatch.yml files, and readings
of a collector."""
from __future__ import annotations

import datetime as dt
import re
import sqlite3
import time
from pathlib import Path

import yaml

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


def without_redis(config_path: Path) -> Path:
    """A demo config whose app does not expect the Redis that `pitwatch demo` starts."""
    config_path.write_text(re.sub(r"\n  redis_url: .*", "", config_path.read_text()))
    return config_path


def demo_copy(seeded: Path, root: Path) -> Path:
    """A copy of a seeded demo folder at ``root``, its app on a port of its own (tests in
    parallel folders never collide) and without Redis; its pitwatch.yml."""
    import shutil

    from pitwatch.core import config
    from pitwatch.core.procs import free_port

    shutil.copytree(seeded, root, symlinks=True)
    text = (root / "pitwatch.yml").read_text().replace(str(seeded), str(root))
    text = text.replace(config.load(seeded / "pitwatch.yml").platform.app_url,
                        f"http://127.0.0.1:{free_port()}")
    (root / "pitwatch.yml").write_text(text)
    return without_redis(root / "pitwatch.yml")


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
