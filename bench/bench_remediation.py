"""Benchmarks of the remediation receiver and of `pitwatch restore`.

    .venv/bin/python bench/bench_remediation.py ack [--rate 200] [--seconds 60] [--runs 3]
    .venv/bin/python bench/bench_remediation.py throughput [--seconds 10] [--runs 3]
    .venv/bin/python bench/bench_remediation.py storm [--runs 3]
    .venv/bin/python bench/bench_remediation.py restore [--size-mb 1024] [--runs 3]

ack:        open-loop POST /alerts (10 alerts each) at --rate notifications/s; p50/p99 of the
            receiver (journal with synchronous=FULL, a policy that judges every alert)
            against a bare "200 OK" WSGI app on the same waitress, measured in the same run.
throughput: `wrk -t1 -c8` POSTing one notification whose rule runs `true`: acknowledged
            notifications/s, each persisted (journal count checked afterwards).
storm:      10,000 alerts in 1,000 notifications, 100 episodes repeated: nothing lost
            (journal counts) and at most one run per episode.
restore:    `pitwatch restore --from snapshot --no-restart` of a generated database
            against a plain copy (+ fsync) of the same file.
Each prints one JSON line per run and the median.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pitwatch.core.procs import Child, free_port, wait_http  # noqa: E402

PY = sys.executable
TOKEN = "bench-token"


def body(n_alerts: int = 10, fingerprint_base: int = 0, starts: str = "2026-11-25T10:00:00Z",
         label: str = "none") -> bytes:
    alerts = [{"status": "firing", "labels": {"alertname": f"A{i}", "remediation": label,
                                              "instance": f"host{i}"},
               "annotations": {"summary": "bench"}, "startsAt": starts,
               "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "",
               "fingerprint": f"{fingerprint_base + i:016x}"} for i in range(n_alerts)]
    return json.dumps({"version": "4", "receiver": "r", "status": "firing", "groupKey": "g",
                       "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                       "externalURL": "", "alerts": alerts}).encode()


SYNCHRONOUS = "full"


def start_receiver(root: Path, policy: list, actions: dict | None = None) -> tuple[Child, str]:
    port = free_port()
    (root / "token").write_text(TOKEN)
    cfg = {"platform": {"database": str(root / "trading.db")},
           "remediation": {"listen": f"127.0.0.1:{port}", "token_file": str(root / "token"),
                           "journal": str(root / "journal.db"), "actions": actions or {},
                           "policy": policy, "workers": 2,
                           "journal_synchronous": SYNCHRONOUS}}
    (root / "pitwatch.yml").write_text(yaml.safe_dump(cfg))
    child = Child("remediator", [PY, "-m", "pitwatch", "remediator", "--config", root / "pitwatch.yml"],
                  log=root / "remediator.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz", 30, proc=child)
    return child, url


BARE = """
import sys, waitress
def app(environ, start_response):
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"OK"]
waitress.serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=8, _quiet=True)
"""


def open_loop(url: str, data: bytes, rate: float, seconds: float, clients: int = 4) -> list[float]:
    """Requests at a fixed schedule (not closed-loop), latency from the scheduled send."""
    latencies: list[float] = []
    lock = threading.Lock()
    start = time.perf_counter() + 0.2
    total = int(rate * seconds)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def worker(k: int) -> None:
        s = requests.Session()
        for i in range(k, total, clients):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t0 = time.perf_counter()
            r = s.post(url, data=data, headers=headers, timeout=10)
            dt = time.perf_counter() - t0
            if r.status_code != 200:
                raise RuntimeError(f"{r.status_code} {r.text[:200]}")
            with lock:
                latencies.append(dt)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def bench_ack(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        policy = [{"name": "rollback", "match": {"remediation": "rollback"}, "action": "rollback"}]
        child, url = start_receiver(root, policy)
        bport = free_port()
        bare = Child("bare", [PY, "-c", BARE, bport], log=root / "bare.log")
        try:
            wait_http(f"http://127.0.0.1:{bport}/", 30, proc=bare)
            data = body()
            open_loop(url + "/alerts", data, args.rate, 2)  # warm-up
            open_loop(f"http://127.0.0.1:{bport}/", data, args.rate, 2)
            rec = open_loop(url + "/alerts", data, args.rate, args.seconds)
            base = open_loop(f"http://127.0.0.1:{bport}/", data, args.rate, args.seconds)
            notes = sqlite3.connect(root / "journal.db").execute(
                "select count(*) from notifications").fetchone()[0]
        finally:
            bare.stop()
            child.stop()
    return {"rate": args.rate, "seconds": args.seconds, "persisted": notes,
            "p50_ms": round(pct(rec, 50) * 1000, 2), "p99_ms": round(pct(rec, 99) * 1000, 2),
            "bare_p50_ms": round(pct(base, 50) * 1000, 2), "bare_p99_ms": round(pct(base, 99) * 1000, 2),
            "p50_ratio": round(pct(rec, 50) / pct(base, 50), 2)}


WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
local f = io.open("%s", "rb")
wrk.body = f:read("*a")
f:close()
"""


def bench_throughput(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        policy = [{"name": "instant", "match": {"remediation": "now"}, "action": "noop",
                   "cooldown": 0, "max_runs": 1000000}]
        child, url = start_receiver(root, policy, {"noop": ["true"]})
        try:
            (root / "body.json").write_bytes(body(label="now"))
            (root / "post.lua").write_text(WRK_LUA % (TOKEN, root / "body.json"))
            out = subprocess.run(["wrk", "-t1", "-c8", f"-d{int(args.seconds)}s", "--latency",
                                  "-s", str(root / "post.lua"), url + "/alerts"],
                                 capture_output=True, text=True, check=True).stdout
            conn = sqlite3.connect(root / "journal.db")
            notes = conn.execute("select count(*) from notifications").fetchone()[0]
            runs = conn.execute("select count(*) from runs").fetchone()[0]
        finally:
            child.stop()
    rps = float(next(ln.split()[1] for ln in out.splitlines() if ln.startswith("Requests/sec")))
    p99 = next(ln.split()[1] for ln in out.splitlines() if ln.strip().startswith("99%"))
    non2xx = [ln for ln in out.splitlines() if "Non-2xx" in ln]
    return {"notifications_per_s": rps, "p99": p99, "persisted": notes, "runs": runs,
            "non_2xx": non2xx[0].strip() if non2xx else "0"}


def bench_storm(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        policy = [{"name": "storm", "match": {"remediation": "storm"}, "action": "noop",
                   "cooldown": 0, "max_runs": 1000000}]
        child, url = start_receiver(root, policy, {"noop": ["true"]})
        rng = random.Random(7)
        episodes = 100
        bodies = []
        for _ in range(1000):
            base = rng.randrange(0, episodes - 10)
            bodies.append(body(10, fingerprint_base=base, label="storm"))
        t0 = time.perf_counter()
        try:
            codes = []
            lock = threading.Lock()

            def send(chunk):
                s = requests.Session()
                for b in chunk:
                    r = s.post(url + "/alerts", data=b, timeout=10,
                               headers={"Authorization": f"Bearer {TOKEN}"})
                    with lock:
                        codes.append(r.status_code)

            threads = [threading.Thread(target=send, args=(bodies[k::8],)) for k in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.perf_counter() - t0
            time.sleep(2)  # let the last runs finish
            conn = sqlite3.connect(root / "journal.db")
            q = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
            result = {
                "seconds": round(took, 2), "accepted": codes.count(200),
                "notifications": q("select count(*) from notifications"),
                "decisions": q("select count(*) from decisions"),
                "episodes": episodes, "runs": q("select count(*) from runs"),
                "max_runs_per_episode": q("select coalesce(max(c), 0) from (select count(*) c "
                                          "from runs group by episode)"),
                "episodes_acted": q("select count(distinct episode) from runs"),
            }
        finally:
            child.stop()
    return result


def make_big_db(path: Path, size_mb: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("create table trades (id integer primary key, symbol text, qty int, price real, "
                 "executed_at real, note blob)")
    rows_per_batch = 2000
    row_bytes = 1000
    target = size_mb << 20
    now = time.time()
    b = 0
    page_size = conn.execute("pragma page_size").fetchone()[0]
    while conn.execute("pragma page_count").fetchone()[0] * page_size < target:
        conn.execute("begin")
        conn.execute("with recursive n(i) as (select 1 union all select i + 1 from n where i < ?) "
                     "insert into trades (symbol, qty, price, executed_at, note) "
                     "select 'ES', i % 5, 5000.25, ?, randomblob(?) from n",
                     (rows_per_batch, now - 100000 + b, row_bytes))
        conn.execute("commit")
        b += 1
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def bench_restore(args) -> dict:
    from pitwatch.core import backups

    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-restore-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        db = work / "trading.db"
        if not db.exists():
            print(f"generating a {args.size_mb} MiB database ...", file=sys.stderr)
            make_big_db(db, args.size_mb)
        snaps = work / "snapshots"
        if not backups.list_snapshots(snaps):
            backups.snapshot(db, snaps)
        [m] = backups.list_snapshots(snaps)[:1]
        cfg = work / "pitwatch.yml"
        cfg.write_text(yaml.safe_dump({"platform": {"database": str(db)},
                                       "backups": {"snapshots_dir": str(snaps)}}))
        subprocess.run(["sync"])
        t0 = time.perf_counter()
        copy = work / "plain-copy.db"
        with open(m.path, "rb") as fin, open(copy, "wb") as fout:
            shutil.copyfileobj(fin, fout, 8 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        plain = time.perf_counter() - t0
        copy.unlink()
        t0 = time.perf_counter()
        out = subprocess.run([PY, "-m", "pitwatch", "restore", "--from", "snapshot", "--no-restart",
                              "--json", "--config", str(cfg)], capture_output=True, text=True)
        restore = time.perf_counter() - t0
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        report = json.loads(out.stdout)
        for q in (work / "quarantine").iterdir():  # keep the bench folder from growing
            shutil.rmtree(q)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return {"size_mb": m.size_bytes >> 20, "restore_s": round(restore, 2),
            "plain_copy_s": round(plain, 2), "ratio": round(restore / plain, 2),
            "reported_rto_s": round(report["rto_seconds"], 2)}


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=["ack", "throughput", "storm", "restore"])
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--dir", help="restore: keep the generated database here between runs")
    ap.add_argument("--synchronous", choices=["full", "normal"], default="full",
                    help="remediation.journal_synchronous of the receiver")
    args = ap.parse_args()
    global SYNCHRONOUS
    SYNCHRONOUS = args.synchronous
    fn = {"ack": bench_ack, "throughput": bench_throughput, "storm": bench_storm,
          "restore": bench_restore}[args.which]
    results = []
    for _ in range(args.runs):
        r = fn(args)
        print(json.dumps(r), flush=True)
        results.append(r)
    med = {k: statistics.median(r[k] for r in results) for k in results[0]
           if isinstance(results[0][k], (int, float))}
    print(json.dumps({"median": med}))


if __name__ == "__main__":
    main()
