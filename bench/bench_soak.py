"""A long demo run: memory and file descriptors of the exporter and the remediator stay
flat, and nothing is left running afterwards.

    .venv/bin/python bench/bench_soak.py [--seconds 600] [--rate 5]

Starts `pitwatch demo DIR --seconds N` with traffic, samples RSS and open fds of the
exporter and the remediator every 10 s (the first minute is warm-up), then checks that
every process of the stack — the restarted app included — is gone.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def sample(pids: dict[str, int]) -> dict[str, tuple[int, int]]:
    out = {}
    for name in ("exporter", "remediator"):
        proc = psutil.Process(pids[name])
        out[name] = (proc.memory_info().rss, proc.num_fds())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--rate", type=float, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        root = Path(tmp) / "demo"
        demo = subprocess.Popen([sys.executable, "-m", "pitwatch", "demo", str(root),
                                 "--seconds", str(args.seconds), "--rate", str(args.rate)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        state = root / "run" / "stack.json"
        while not state.exists():
            time.sleep(0.5)
        started = time.monotonic()
        pids = {c["name"]: c["pid"] for c in json.loads(state.read_text())["components"] if c["pid"]}
        samples = []
        while demo.poll() is None and time.monotonic() - started < args.seconds - 5:
            if time.monotonic() - started >= 60:
                samples.append(sample(pids))
            time.sleep(10)
        app_pid = int((root / "run" / "app.pid").read_text())
        demo.wait()
        time.sleep(2)
        left = [p for p in [*pids.values(), app_pid]
                if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    print(f"| process | RSS after 1 min | RSS at end | change | fds after 1 min | fds at end |")
    print("|---|---|---|---|---|---|")
    for name in ("exporter", "remediator"):
        (rss0, fd0), (rss1, fd1) = samples[0][name], samples[-1][name]
        print(f"| {name} | {rss0 / 2**20:.1f} MiB | {rss1 / 2**20:.1f} MiB | "
              f"{(rss1 / rss0 - 1) * 100:+.1f} % | {fd0} | {fd1} |")
    print(f"\n{len(samples)} samples over {args.seconds:.0f} s; processes left after the stop: "
          f"{left or 'none'}")


if __name__ == "__main__":
    main()
