"""Resident memory of the ``pitwatch exporter`` process after 1,000 scrapes.

Goal: RSS <= 60 MB. A full configuration on a ~10 MB trading database: trading
queries, snapshots with restore test, Redis, an auth log, a certificate file and
a TLS endpoint, the header probe. RSS is read after 10 scrapes and after 1,000
(the difference shows a leak).

    .venv/bin/python bench/bench_memory.py [--runs 3] [--scrapes 1000]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

from bench_scrape import WORK, Exporter, generate_db, machine, small_snapshot, today, write_config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' helpers
from support.fixtures import SECURITY_HEADERS, make_cert  # noqa: E402
from support.servers import HTTPServer, start_redis  # noqa: E402

GOAL = 60 * 10**6


def one_run(folder: Path, scrapes: int, extra: dict) -> tuple[int, int]:
    db = folder / "trading.db"
    if not db.exists():
        generate_db(db, 10 * 10**6)
    config = write_config(folder, db, small_snapshot(WORK))
    doc = yaml.safe_load(config.read_text())
    for section, values in extra.items():
        doc[section] = {**doc.get(section, {}), **values}
    config.write_text(yaml.safe_dump(doc))
    exporter = Exporter(config, folder / "exporter.log")
    try:
        exporter.settle()
        for _ in range(10):
            exporter.scrape()
        early = exporter.rss()
        for _ in range(scrapes - 10):
            exporter.scrape()
        return early, exporter.rss()
    finally:
        exporter.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scrapes", type=int, default=1000)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WORK, prefix="memory-") as tmp:
        folder = Path(tmp)
        cert, key, _ = make_cert(folder, "site", days=90)
        redis, redis_url = start_redis(folder)
        web = HTTPServer(SECURITY_HEADERS)
        tls = HTTPServer(SECURITY_HEADERS, cert=(cert, key))
        extra = {"platform": {"redis_url": redis_url, "app_url": web.url},
                 "security": {"certificates": [str(cert)], "tls_endpoints": [tls.url]}}
        try:
            runs = [one_run(folder, args.scrapes, extra) for _ in range(args.runs)]
        finally:
            web.close()
            tls.close()
            redis.stop()
    for early, late in runs:
        print(f"RSS after 10 scrapes {early / 1e6:.1f} MB, after {args.scrapes}: {late / 1e6:.1f} MB")
    early = statistics.median(r[0] for r in runs)
    late = statistics.median(r[1] for r in runs)
    print(f"\n{machine()}, {today()}, median of {args.runs} runs")
    print(f"| RSS after 10 scrapes | RSS after {args.scrapes} scrapes |\n|---|---|")
    print(f"| {early / 1e6:.1f} MB | {late / 1e6:.1f} MB |")
    print("goal (RSS <= 60 MB):", "met" if late <= GOAL else "NOT met")
    return 0 if late <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
