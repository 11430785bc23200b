"""Scrape latency of the full ``pitwatch exporter`` on a ~10 MB and a ~1 GB trading database.

Goal: p99 <= 20 ms on both, and the 1 GB p99 within 1.5x of the 10 MB one (a scrape is
constant in database size). The databases are generated under bench/work/ (git-ignored)
and deleted afterwards. Both exporters run at once and are scraped in turn, so machine
noise hits both alike. Background checks (integrity, restore test, market calendar)
have all run once before measuring. ``bench_memory.py`` reuses the helpers here.

    .venv/bin/python bench/bench_scrape.py [--runs 3] [--scrapes 500] [--keep]
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

from pitwatch.core import backups
from pitwatch.core.procs import Child, free_port, wait_http, wait_until

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"  # git-ignored

QUERIES = [
    {"name": "last_trade_timestamp_seconds", "sql": "select max(ts) from trades"},
    {"name": "open_positions",
     "sql": "select symbol, count(*) from positions where closed_at is null group by symbol"},
]


def generate_db(path: Path, target_bytes: int) -> Path:
    """A trading database of about ``target_bytes``, filled with bulk inserts.

    ~120 bytes per trade; positions are 1 per 100 trades, 1,000 of them open (the
    platform's working set does not grow with its history).
    """
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript("""
        PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-200000;
        create table trades(id integer primary key, symbol text, ts real, qty int, price real,
                            note text);
        create table positions(id integer primary key, symbol text, opened_at real, closed_at real);
    """)
    rows = max(target_bytes // 120, 1000)
    now = time.time()
    conn.execute(f"""
        insert into trades(symbol, ts, qty, price, note)
        with recursive n(i) as (select 1 union all select i + 1 from n where i < {rows})
        select char(65 + i % 6, 65 + i % 5), {now} - ({rows} - i) * 0.01, 1 + i % 9,
               4000 + (i % 1000) * 0.25, hex(randomblob(28)) from n
    """)
    positions = rows // 100
    conn.execute(f"""
        insert into positions(symbol, opened_at, closed_at)
        with recursive n(i) as (select 1 union all select i + 1 from n where i < {positions})
        select char(65 + i % 6, 65 + i % 5), {now} - i, case when i <= 1000 then null else {now} end from n
    """)
    conn.execute("create index trades_ts on trades(ts)")
    conn.execute("create index positions_open on positions(symbol) where closed_at is null")
    conn.commit()
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
                    and body.count(b"pitwatch_sqlite_integrity_check_ok{") == 2)
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


SIZES = {"10MB": 10 * 10**6, "1GB": 10**9}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(configs: dict[str, Path], scrapes: int) -> dict[str, tuple[float, float]]:
    """p50/p99 per database, both exporters running and scraped in turn.

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
    finally:
        for exporter in exporters.values():
            exporter.stop()
    return {label: (percentile(t, 0.5), percentile(t, 0.99)) for label, t in took.items()}


def main() -> int:
    import argparse
    import statistics

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scrapes", type=int, default=500)
    parser.add_argument("--keep", action="store_true", help="keep the generated databases")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    snaps = small_snapshot(WORK)
    results = {}
    try:
        configs = {}
        for label, size in SIZES.items():
            db = WORK / f"trading-{label}.db"
            if not db.exists():
                started = time.time()
                generate_db(db, size)
                print(f"generated {db.name}: {db.stat().st_size / 1e6:.0f} MB in "
                      f"{time.time() - started:.0f}s", flush=True)
            folder = WORK / label
            folder.mkdir(exist_ok=True)
            configs[label] = write_config(folder, db, snaps)
        runs = []
        for _ in range(args.runs):
            runs.append(measure(configs, args.scrapes))
            print("  ".join(f"{label}: p50 {p50 * 1000:.2f} ms p99 {p99 * 1000:.2f} ms"
                            for label, (p50, p99) in runs[-1].items()), flush=True)
        for label in SIZES:
            db = WORK / f"trading-{label}.db"
            results[label] = (statistics.median(r[label][0] for r in runs),
                              statistics.median(r[label][1] for r in runs), db.stat().st_size)
    finally:
        if not args.keep:
            for label in SIZES:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{WORK / f'trading-{label}.db'}{suffix}").unlink(missing_ok=True)
    print(f"\n{machine()}, {today()}, median of {args.runs} runs x {args.scrapes} scrapes")
    print("| database | size | p50 | p99 |\n|---|---|---|---|")
    for label, (p50, p99, size) in results.items():
        print(f"| {label} | {size / 1e6:.0f} MB | {p50 * 1000:.2f} ms | {p99 * 1000:.2f} ms |")
    small, big = results["10MB"], results["1GB"]
    print(f"ratio 1GB/10MB: p50 {big[0] / small[0]:.2f}, p99 {big[1] / small[1]:.2f}")
    ok = max(small[1], big[1]) <= 0.020 and big[1] / small[1] <= 1.5
    print("goal (p99 <= 20 ms, ratio <= 1.5):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
