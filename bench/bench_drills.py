"""MTTR, RTO and RPO of the drills on the real demo stack, with the shipped timings.

Each run is `pitwatch drill SCENARIO DIR --json` in a fresh folder (its own stack, so
no cooldown of a previous run is in the way). Prints a Markdown table of medians and
where the seconds go:

    .venv/bin/python bench/bench_drills.py [--runs 3] [SCENARIO ...]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# (name, from event, to event): the stages of a recovery.
STAGES = (
    ("detection (scrape + evaluation + rate window)", "fault injected", "alert pending"),
    ("`for`", "alert pending", "alert firing"),
    ("routing (group_wait + send)", "alert firing", "webhook received"),
    ("queue", "webhook received", "action started"),
    ("action", "action started", "action finished"),
    ("verification", "action finished", "healthy again"),
)


def one(scenario: str) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"drill-{scenario}-") as tmp:
        proc = subprocess.run([sys.executable, "-m", "pitwatch", "drill", scenario,
                               str(Path(tmp) / "demo"), "--json"],
                              capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"{scenario} failed:\n{proc.stdout}\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", default=["bad-release", "db-corruption"])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for scenario in args.scenarios:
        reports = []
        for n in range(args.runs):
            reports.append(one(scenario))
            print(f"{scenario} run {n + 1}: MTTR {reports[-1]['mttr_seconds']}s", file=sys.stderr)
        print(f"\n### {scenario} ({args.runs} runs)\n")
        print("| figure | median | runs |\n|---|---|---|")
        rows = [("MTTR (fault -> healthy)", [r["mttr_seconds"] for r in reports])]
        for name, start, end in STAGES:
            rows.append((name, [r["timeline_seconds"][end] - r["timeline_seconds"][start]
                                for r in reports]))
        for key in ("rto_seconds", "rpo_seconds", "rpo_trades_lost"):
            if key in reports[0]:
                rows.append((key, [r[key] for r in reports]))
        for name, values in rows:
            runs = ", ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in values)
            print(f"| {name} | {statistics.median(values):.1f} | {runs} |")
        # What each run said rather than measured: the restore's replication proof, and
        # any action besides the expected one since the fault.
        for key in ("replication", "other_actions_since_fault"):
            if key in reports[0]:
                print(f"| {key} | | {', '.join(str(r[key]) for r in reports)} |")


if __name__ == "__main__":
    main()
