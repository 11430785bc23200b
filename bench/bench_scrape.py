"""Scrape latency of the full ``pitwatch exporter`` on a ~10 MB and a ~2 GB (25 M-trade)
trading database, with the shipped example ``trading_queries``.

Goal: p99 <= 20 ms on both, and the 2 GB p99 within 1.5x of the 10 MB one (a scrape is
constant in database size). The databases have the demo's schema and indexes and are
generated under bench/work/ (git-ignored), then deleted. Both exporters run at once and
are scraped in turn, so machine noise hits both alike. Background checks (integrity,
restore test, market calendar, every trading query) have all run once before measuring.

"Before": what one scrape cost when the trading queries ran inside it, timed in this
process on the same files: the shipped queries as they were (the last-hour query without
INDEXED BY) and as they are. ``bench_memory.py`` reuses the helpers here.

    .venv/bin/python bench/bench_scrape.py [--runs 3] [--scrapes 500] [--before 10] [--keep]
"""
from __future__ import annotations

import http.client
import os
import platform
import sqlite3
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil
import yaml

from pitwatch.core import backups, resources
from pitwatch.core.procs import Child, free_port, wait_http, wait_until
from pitwatch.demo import store
from pitwatch.demo.instruments import INSTRUMENTS

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"  # git-ignored

# The shipped example's trading queries: what an operator starts from.
QUERIES = yaml.safe_load(resources.path("pitwatch.example.yml").read_text())["trading_queries"]
HOUR_QUERY = "contracts_traded_last_hour"
# Trades arrive at the same rate in every database (one per 1.25 s, ~2,900 an hour), so
# the queries' results are alike and only the history behind them grows.
TRADE_SPACING = 1.25
# Demo schema, trades and their two indexes: ~80 bytes per trade.
BYTES_PER_TRADE = 80
SYMBOLS = [s.ljust(3) for s in INSTRUMENTS]


def generate_db(path: Path, target_bytes: int) -> Path:
    """A database with the demo's schema of about ``target_bytes``, filled in bulk.

    One INSERT ... SELECT from a recursive CTE per table (no Python per row) with
    journal_mode=OFF and synchronous=OFF, the trade indexes built after the rows.
    Positions are 1 per 100 trades, 1,000 of them open (the working set does not grow
    with the history).
    """
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; "
                       "PRAGMA cache_size=-1000000;" + store.SCHEMA +
                       "drop index trades_symbol_time; drop index trades_time;")
    rows = max(target_bytes // BYTES_PER_TRADE, 1000)
    now = time.time()
    symbols = "".join(SYMBOLS)
    conn.execute("begin")
    conn.executemany("insert into instruments(symbol, name, exchange, tick, multiplier)"
                     " values (?, ?, ?, ?, ?)",
                     [(i.symbol, i.name, i.exchange, i.tick, i.multiplier) for i in INSTRUMENTS.values()])
    conn.execute(f"""
        insert into trades(account, symbol, side, quantity, price, executed_at)
        with recursive n(i) as (select 1 union all select i + 1 from n where i < {rows})
        select 'acct' || (abs(random()) % 40),
               trim(substr('{symbols}', (abs(random()) % {len(SYMBOLS)}) * 3 + 1, 3)),
               case when random() > 0 then 'buy' else 'sell' end, 1 + abs(random()) % 10,
               4000 + (abs(random()) % 4000) * 0.25, {now} - ({rows} - i) * {TRADE_SPACING} from n
    """)
    positions = rows // 100
    conn.execute(f"""
        insert into positions(account, symbol, side, quantity, avg_price, opened_at, closed_at)
        with recursive n(i) as (select 1 union all select i + 1 from n where i < {positions})
        select 'acct' || (i % 40), trim(substr('{symbols}', (i % {len(SYMBOLS)}) * 3 + 1, 3)),
               'long', 1 + i % 5, 4000, {now} - i * 60,
               case when i <= 1000 then null else {now} - i * 30 end from n
    """)
    conn.execute("commit")
    conn.executescript(store.SCHEMA)  # the dropped indexes, built in one sort each
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return path


def write_config(folder: Path, database: Path, snapshots: Path) -> Path:
    cfg = folder / "pitwatch.yml"
    cfg.write_text(yaml.safe_dump({
        "platform": {"database": str(database), "app_url": "http://127.0.0.1:9"},
        "trading_queries": QUERIES,
        "backups": {"snapshots_dir": str(snapshots), "restore_test_interval": "1h"},
        "security": {"firewall": "off", "auth_logs": [str(folder / "auth.log")]},
        "exporter": {"quick_check_interval": "5m", "integrity_check_interval": "1h"},
    }))
    (folder / "auth.log").write_text("sshd: Failed password for root\n" * 1000)
    return cfg


def small_snapshot(folder: Path) -> Path:
    """A snapshots folder with one snapshot of a small database (the same for every run)."""
    snaps = folder / "snaps"
    if not any(snaps.glob("*.json")):
        small = generate_db(folder / "snapshot-source.db", 1 << 20)
        backups.snapshot(small, snaps)
    return snaps


class Exporter:
    """The real ``pitwatch exporter`` on a free port, with a keep-alive scrape client."""

    def __init__(self, config: Path, log: Path):
        self.port = free_port()
        self.child = Child("exporter", [sys.executable, "-m", "pitwatch", "exporter", "--config",
                                        config, "--listen", f"127.0.0.1:{self.port}"], log=log)
        wait_http(f"http://127.0.0.1:{self.port}/healthz", timeout=60, proc=self.child)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def scrape(self) -> bytes:
        self.conn.request("GET", "/metrics")
        resp = self.conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"/metrics answered {resp.status}")
        return body

    def settle(self, timeout: float = 600) -> None:
        """Wait until every background check has run once (they run at start)."""
        def done() -> bool:
            body = self.scrape()
            return (b"pitwatch_market_open " in body and b"pitwatch_backup_restore_test_ok " in body
                    and body.count(b"pitwatch_sqlite_integrity_check_ok{") == 2
                    and body.count(b"pitwatch_trading_query_success{") == len(QUERIES))
        wait_until(done, timeout, interval=1, what="background checks")

    def rss(self) -> int:
        return psutil.Process(self.child.pid).memory_info().rss

    def stop(self) -> None:
        self.conn.close()
        self.child.stop()


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs, "
            f"{mem:.0f} GiB RAM, Python {platform.python_version()}")


def today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


SIZES = {"10MB": 10 * 10**6, "2GB": 2_200 * 10**6}
SMALL, LARGE = SIZES


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def query_durations(body: bytes) -> dict[str, float]:
    """pitwatch_trading_query_duration_seconds{query} of one scrape."""
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("pitwatch_trading_query_duration_seconds{"):
            labels, value = line.rsplit(" ", 1)
            out[labels.split('query="', 1)[1].split('"', 1)[0]] = float(value)
    return out


def measure(configs: dict[str, Path], scrapes: int) -> tuple[dict[str, tuple[float, float]],
                                                               dict[str, dict[str, float]]]:
    """p50/p99 per database, both exporters running and scraped in turn; and how long
    each trading query took in the background at the end.

    Interleaving puts both under the same machine noise, so their ratio compares
    database sizes rather than moments.
    """
    exporters = {}
    try:
        for label, config in configs.items():
            exporters[label] = Exporter(config, config.parent / "exporter.log")
        for exporter in exporters.values():
            exporter.settle()
            for _ in range(20):
                exporter.scrape()
        took: dict[str, list[float]] = {label: [] for label in exporters}
        for _ in range(scrapes):
            for label, exporter in exporters.items():
                started = time.perf_counter()
                exporter.scrape()
                took[label].append(time.perf_counter() - started)
        background = {label: query_durations(e.scrape()) for label, e in exporters.items()}
    finally:
        for exporter in exporters.values():
            exporter.stop()
    return ({label: (percentile(t, 0.5), percentile(t, 0.99)) for label, t in took.items()},
            background)


def unpinned(sql: str) -> str:
    """The last-hour query as it shipped before: no INDEXED BY."""
    return " ".join(sql.split()).replace(" indexed by trades_time", "")


def in_scrape(db: Path, sqls: list[str], repeat: int) -> tuple[float, float]:
    """p50/p99 seconds of running ``sqls`` the way a scrape used to: a fresh read-only
    connection, every query, once per scrape (this process, warm page cache)."""
    from pitwatch.exporters.sqlite import connect_ro

    took = []
    for _ in range(repeat + 1):  # the first one warms the page cache
        started = time.perf_counter()
        conn = connect_ro(db)
        for sql in sqls:
            conn.execute(sql).fetchall()
        conn.close()
        took.append(time.perf_counter() - started)
    return percentile(took[1:], 0.5), percentile(took[1:], 0.99)


def main() -> int:
    import argparse
    import statistics

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scrapes", type=int, default=500)
    parser.add_argument("--before", type=int, default=10, metavar="N",
                        help="time N scrapes' worth of in-scrape queries per database (0: skip)")
    parser.add_argument("--keep", action="store_true", help="keep the generated databases")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    snaps = small_snapshot(WORK)
    results, before, background, trades = {}, {}, {}, {}
    try:
        configs = {}
        for label, size in SIZES.items():
            db = WORK / f"trading-{label}.db"
            if not db.exists():
                started = time.time()
                generate_db(db, size)
                print(f"generated {db.name}: {db.stat().st_size / 1e6:.0f} MB in "
                      f"{time.time() - started:.0f}s", flush=True)
            conn = sqlite3.connect(db)
            trades[label] = conn.execute("select max(id) from trades").fetchone()[0]
            conn.close()
            folder = WORK / label
            folder.mkdir(exist_ok=True)
            configs[label] = write_config(folder, db, snaps)
        runs = []
        for _ in range(args.runs):
            runs.append(measure(configs, args.scrapes))
            print("  ".join(f"{label}: p50 {p50 * 1000:.2f} ms p99 {p99 * 1000:.2f} ms"
                            for label, (p50, p99) in runs[-1][0].items()), flush=True)
        for label in SIZES:
            db = WORK / f"trading-{label}.db"
            results[label] = (statistics.median(r[0][label][0] for r in runs),
                              statistics.median(r[0][label][1] for r in runs), db.stat().st_size)
            background[label] = {q: statistics.median(r[1][label][q] for r in runs)
                                 for q in runs[0][1][label]}
        if args.before:
            now = [q["sql"] for q in QUERIES]
            then = [unpinned(q["sql"]) if q["name"] == HOUR_QUERY else q["sql"] for q in QUERIES]
            for label in SIZES:
                db = WORK / f"trading-{label}.db"
                before[label] = (in_scrape(db, then, args.before), in_scrape(db, now, args.before))
                print(f"{label}: queries in the scrape, as shipped before: p50 "
                      f"{before[label][0][0] * 1000:.1f} ms; with INDEXED BY: p50 "
                      f"{before[label][1][0] * 1000:.1f} ms", flush=True)
    finally:
        if not args.keep:
            for label in SIZES:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{WORK / f'trading-{label}.db'}{suffix}").unlink(missing_ok=True)
    print(f"\n{machine()}, {today()}, median of {args.runs} runs x {args.scrapes} scrapes")
    print("| database | size | trades | scrape p50 | scrape p99 |\n|---|---|---|---|---|")
    for label, (p50, p99, size) in results.items():
        print(f"| {label} | {size / 1e6:,.0f} MB | {trades[label] / 1e6:.2f} M | "
              f"{p50 * 1000:.2f} ms | {p99 * 1000:.2f} ms |")
    small, big = results[SMALL], results[LARGE]
    print(f"ratio {LARGE}/{SMALL}: p50 {big[0] / small[0]:.2f}, p99 {big[1] / small[1]:.2f}")
    print("\nbackground run of each trading query (median of the runs' last reading):")
    for label, durations in background.items():
        print(f"  {label}: " + ", ".join(f"{q} {s * 1000:.1f} ms" for q, s in durations.items()))
    if before:
        print(f"\ntrading queries inside a scrape ({args.before} scrapes, warm cache): p50 / p99")
        print("| database | as shipped before | with INDEXED BY |\n|---|---|---|")
        for label, ((b50, b99), (a50, a99)) in before.items():
            print(f"| {label} | {b50 * 1000:.1f} / {b99 * 1000:.1f} ms | "
                  f"{a50 * 1000:.1f} / {a99 * 1000:.1f} ms |")
    ok = max(small[1], big[1]) <= 0.020 and big[1] / small[1] <= 1.5
    print("goal (p99 <= 20 ms, ratio <= 1.5):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
