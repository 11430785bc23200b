"""Overhead of ``pitwatch.exporters.flask.instrument`` on the demo app's throughput.

Two waitress servers of the same demo folder, one instrumented and one bare, are
loaded in alternation (bare, instrumented, instrumented, bare, ...) so drift hits
both alike. Each pair gives a ratio instrumented/bare of requests per second; the
median of the pairs is the result (goal: >= 0.90). On a shared machine req/s is
noisy, so the server's CPU seconds per request are measured too: their inverse ratio
is the throughput ratio of a CPU-bound server, and it is much steadier.

    .venv/bin/python bench/bench_instrumentation.py [--pairs 5] [--seconds 5]

The client is wrk when installed (``apt-get install wrk``), else a Python thread pool.
"""
from __future__ import annotations

import argparse
import json
import logging
import platform as host
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pitwatch.core.procs import Child, free_port, wait_http  # noqa: E402

ENDPOINTS = {
    "api": "/api/chart/ES?timeframe=1m",  # a typical API call: one indexed query
    "index": "/",  # no database at all: the worst case for relative overhead
}
THREADS, CONNECTIONS = 4, 8


def serve(config_path: str, port: int, instrumented: bool) -> None:
    from waitress import serve as waitress_serve

    from pitwatch.core import config
    from pitwatch.demo.app import create_app

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    app = create_app(config.load(config_path), instrument=instrumented)
    waitress_serve(app, host="127.0.0.1", port=port, threads=THREADS, _quiet=True)


def load_wrk(url: str, seconds: float) -> float:
    out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds:g}s", url],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def load_python(url: str, seconds: float) -> float:
    done = [0] * CONNECTIONS
    end = time.monotonic() + seconds

    def worker(i):
        s = requests.Session()
        while time.monotonic() < end:
            s.get(url, timeout=10)
            done[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / seconds


def in_process(config_path: Path, rounds: int = 8, requests_per_round: int = 1000) -> dict:
    """Server-free cost per request (Flask test client, one thread): the added microseconds.

    Both apps live side by side and take turns, so drift and noise hit both alike.
    """
    from pitwatch.core import config
    from pitwatch.demo.app import create_app

    cfg = config.load(config_path)
    clients = {mode: create_app(cfg, instrument=mode == "instrumented").test_client()
               for mode in ("bare", "instrumented")}
    out = {}
    for name, path in ENDPOINTS.items():
        cost = {"bare": [], "instrumented": []}
        for client in clients.values():
            for _ in range(300):
                client.get(path)
        for i in range(rounds):
            for mode in (("bare", "instrumented") if i % 2 == 0 else ("instrumented", "bare")):
                began = time.process_time()
                for _ in range(requests_per_round):
                    clients[mode].get(path)
                cost[mode].append((time.process_time() - began) / requests_per_round * 1e6)
        bare, inst = statistics.median(cost["bare"]), statistics.median(cost["instrumented"])
        out[name] = {"bare_us": round(bare), "instrumented_us": round(inst),
                     "added_us": round(inst - bare), "ratio": round(bare / inst, 3)}
        print(f"{name:6} in-process: bare {bare:.0f} us/req, instrumented {inst:.0f} us/req",
              flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5, help="A/B pairs per endpoint (default 5)")
    ap.add_argument("--seconds", type=float, default=5.0, help="load per run (default 5)")
    ap.add_argument("--serve", nargs=3, metavar=("CONFIG", "PORT", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2] == "instrumented")
        return 0

    from pitwatch.demo import platform

    load = load_wrk if shutil.which("wrk") else load_python
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = platform.init(Path(tmp) / "demo", echo=lambda _: None)
        servers, urls = [], {}
        try:
            for mode in ("bare", "instrumented"):
                port = free_port()
                servers.append(Child(mode, [sys.executable, __file__, "--serve", str(cfg_path),
                                            str(port), mode], log=Path(tmp) / f"{mode}.log"))
                urls[mode] = f"http://127.0.0.1:{port}"
                wait_http(urls[mode] + "/health", 30, proc=servers[-1])
            procs = {s.name: psutil.Process(s.pid) for s in servers}
            results = {}
            for name, path in ENDPOINTS.items():
                for mode in urls:  # warm up both (imports, caches)
                    load(urls[mode] + path, 1)
                ratios, cpu_ratios = [], []
                rps, cpu_us = {"bare": [], "instrumented": []}, {"bare": [], "instrumented": []}
                for i in range(args.pairs):
                    order = ("bare", "instrumented") if i % 2 == 0 else ("instrumented", "bare")
                    got, per_req = {}, {}
                    for mode in order:
                        proc = procs[mode]
                        before = sum(proc.cpu_times()[:2])
                        got[mode] = load(urls[mode] + path, args.seconds)
                        used = sum(proc.cpu_times()[:2]) - before
                        per_req[mode] = used / (got[mode] * args.seconds) * 1e6
                        rps[mode].append(got[mode])
                        cpu_us[mode].append(per_req[mode])
                    ratios.append(got["instrumented"] / got["bare"])
                    cpu_ratios.append(per_req["bare"] / per_req["instrumented"])
                    print(f"{name:6} pair {i + 1}: bare {got['bare']:8.1f} req/s "
                          f"{per_req['bare']:6.0f} us CPU/req, instrumented "
                          f"{got['instrumented']:8.1f} req/s {per_req['instrumented']:6.0f} us "
                          f"CPU/req; ratio {ratios[-1]:.3f} (CPU {cpu_ratios[-1]:.3f})", flush=True)
                results[name] = {
                    "path": path,
                    "bare_rps_median": round(statistics.median(rps["bare"]), 1),
                    "instrumented_rps_median": round(statistics.median(rps["instrumented"]), 1),
                    "ratio_median": round(statistics.median(ratios), 3),
                    "ratios": [round(r, 3) for r in ratios],
                    "bare_cpu_us_per_request_median": round(statistics.median(cpu_us["bare"])),
                    "instrumented_cpu_us_per_request_median":
                        round(statistics.median(cpu_us["instrumented"])),
                    "cpu_ratio_median": round(statistics.median(cpu_ratios), 3),
                }
        finally:
            for s in servers:
                s.stop()
        results["in_process"] = in_process(cfg_path)
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), host.processor())
    summary = {"date": date.today().isoformat(), "machine": f"{cpu}, {host.machine()}",
               "client": f"{load.__name__.removeprefix('load_')} {CONNECTIONS} connections",
               "server": f"waitress {THREADS} threads", "seconds_per_run": args.seconds,
               "pairs": args.pairs, "results": results}
    print(json.dumps(summary, indent=2))
    return 0 if results["api"]["ratio_median"] >= 0.90 else 1


if __name__ == "__main__":
    sys.exit(main())
