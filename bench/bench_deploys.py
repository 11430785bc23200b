"""Failed requests during deploys and rollbacks, and how fast a bad release goes back.

Each run: a fresh demo folder, its app under gunicorn and the demo's traffic generator
at --rate requests/s (trades, charts, positions, logins, /health). Then, counted by the
generator (connection errors and 5xx):

- a good deploy (1.4.2 -> an identical 1.4.3) with the demo's reload_command;
- a rollback back to 1.4.2;
- the same good deploy with a restart in place (no reload_command): the "before";
- a bad deploy (1.5.0: 30 % of API calls fail, /health green) with its watch: seconds
  from "switching to 1.5.0" to "switching to 1.4.2" in the deploy's own output.

    .venv/bin/python bench/bench_deploys.py [--runs 3] [--rate 40]
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pitwatch.core import config
from pitwatch.core.procs import Child, wait_http
from pitwatch.demo import platform, releases, traffic

PITWATCH = [sys.executable, "-m", "pitwatch"]


def failed(cfg, rate: float, *argv: str) -> tuple[int, int, subprocess.CompletedProcess]:
    """(failed, answered) requests of the traffic while ``pitwatch argv`` runs."""
    gen = traffic.from_config(cfg, rate=rate)
    t = threading.Thread(target=gen.run, daemon=True)
    t.start()
    time.sleep(2)  # steady traffic before the switch
    done = subprocess.run([*PITWATCH, *argv, "--config", str(cfg.source)], capture_output=True,
                          text=True, timeout=600)
    time.sleep(1)
    gen.stopping.set()
    t.join(30)
    s = gen.stats
    return s["unreachable"] + s["5xx"], sum(s.values()), done


def switch_to_rollback(cfg, rate: float) -> float:
    """Seconds from the switch to the bad release to the switch back, under traffic."""
    gen = traffic.from_config(cfg, rate=rate)
    t = threading.Thread(target=gen.run, daemon=True)
    t.start()
    time.sleep(2)
    proc = subprocess.Popen([*PITWATCH, "deploy", "1.5.0", "--force", "--no-snapshot",
                             "--watch", "30s", "--config", str(cfg.source)],
                            stdout=subprocess.PIPE, text=True)
    at = {}
    for line in proc.stdout:
        if m := re.match(r"switching to (\S+)", line):
            at.setdefault(m.group(1), time.monotonic())
    proc.wait(600)
    gen.stopping.set()
    t.join(30)
    if proc.returncode != 1 or "1.4.2" not in at:
        raise SystemExit(f"the bad deploy was not rolled back (exit {proc.returncode})")
    return at["1.4.2"] - at["1.5.0"]


def one(rate: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-deploys-") as tmp:
        path = platform.init(Path(tmp) / "demo", echo=lambda m: None)
        text = re.sub(r"\n  redis_url: .*", "", path.read_text())  # no Redis in this bench
        path.write_text(text)
        releases.write(path.parent / "releases", releases.Release("1.4.3", notes="1.4.2 rebuilt"))
        cfg = config.load(path)
        app = Child("app", [*PITWATCH, "demo", "app", "--config", str(path)],
                    log=path.parent / "logs" / "app.log")
        try:
            wait_http(cfg.platform.app_url + "/health", 60, proc=app)
            out = {}
            out["deploy"], sent, done = failed(cfg, rate, "deploy", "1.4.3", "--force",
                                               "--no-snapshot", "--watch", "5s")
            assert done.returncode == 0, done.stderr
            out["rollback"], _, done = failed(cfg, rate, "rollback", "--to", "1.4.2",
                                              "--watch", "5s")
            assert done.returncode == 0, done.stderr
            out["bad_switch_to_rollback_s"] = round(switch_to_rollback(cfg, rate), 2)
            path.write_text(re.sub(r"\n  reload_command: .*", "", path.read_text()))
            out["deploy_restart"], _, done = failed(config.load(path), rate, "deploy", "1.4.3",
                                                    "--force", "--no-snapshot", "--watch", "0")
            out["requests_per_deploy"] = sent
            return out
        finally:
            app.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=40.0)
    args = parser.parse_args()
    runs = []
    for n in range(args.runs):
        runs.append(one(args.rate))
        print(f"run {n + 1}: {json.dumps(runs[-1])}", file=sys.stderr)
    print("| figure | median | runs |\n|---|---|---|")
    for key, name in (("deploy", "failed requests, good deploy (reload)"),
                      ("rollback", "failed requests, rollback (reload)"),
                      ("bad_switch_to_rollback_s", "bad release: switch -> rollback (s)"),
                      ("deploy_restart", "failed requests, good deploy (restart, before)"),
                      ("requests_per_deploy", "requests sent during a good deploy")):
        values = [r[key] for r in runs]
        print(f"| {name} | {statistics.median(values):g} | {', '.join(f'{v:g}' for v in values)} |")


if __name__ == "__main__":
    main()
