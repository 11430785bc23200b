"""The whole demo stack end to end, as `pitwatch demo DIR` runs it: the drills on the real
stack (shipped rules, routes and timings), every dashboard panel's query against its
Prometheus, stopped backups, then a clean stop with no process left behind.

One stack serves the module, in this order: a drill that did not recover fails, and the
panels are read after the drills so the remediation panels have something to show.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import psutil
import pytest
import requests

from pitwatch.dashboards.queries import panels_without_data
from pitwatch import drills
from pitwatch.core import backups, config
from pitwatch.demo import stack
from pitwatch.mailsink import read_mail
from pitwatch.core.procs import Child
from support.waiting import EVENTUALLY, STACK_STARTUP, wait_until

pytestmark = pytest.mark.slow  # starts the demo stack


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e") / "demo"
    # --seconds only ends it if the module cannot (the last test stops it with Ctrl-C).
    child = Child("demo", [sys.executable, "-m", "pitwatch", "demo", str(root), "--seconds", "7200"],
                  log=root.parent / "demo.log")
    wait_until(lambda: stack.running(root) is not None, STACK_STARTUP, interval=0.5,
               what="the demo stack (see demo.log)")
    yield root, child
    child.stop(grace=30)


def drill(scenario: str, root) -> dict:
    proc = subprocess.run([sys.executable, "-m", "pitwatch", "drill", scenario, str(root), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "using the demo stack running in" in proc.stderr
    return json.loads(proc.stdout)


def journal_runs(root) -> list[tuple]:
    conn = sqlite3.connect(f"file:{root / 'state' / 'journal.db'}?mode=ro", uri=True)
    try:
        return conn.execute("select action, status, exit_code from runs").fetchall()
    finally:
        conn.close()


def assert_followed(report: dict) -> None:
    t = report["timeline_seconds"]
    assert report["recovered"] and report["action_result"] == "success"
    for event in drills.EVENTS:
        assert event in t, f"{event} missing from {t}"
    assert 0 < t["alert pending"] <= t["alert firing"]
    # Both read from the remediator's journal; in some runs "webhook received" came out
    # 0.01 s after "action started" (cause not found yet): the order holds within 0.05 s.
    assert t["webhook received"] <= t["action started"] + 0.05
    # The platform may serve again a moment before the action's own checks (health and
    # smoke URLs) let it finish: both follow its start.
    assert t["action started"] <= min(t["action finished"], t["healthy again"])
    assert report["mttr_seconds"] == t["healthy again"]


def test_bad_release_is_rolled_back(demo):
    root, _ = demo
    report = drill("bad-release", root)
    assert_followed(report)
    assert report["timeline_seconds"]["alert firing"] <= report["timeline_seconds"]["webhook received"]
    assert report["mail_subject"].startswith("[FIRING:CRITICAL] AppHighErrorRate")
    assert (root / "releases" / "current").resolve().name == drills.GOOD
    assert ("rollback", "success", 0) in journal_runs(root)


def test_corrupted_database_is_restored(demo):
    root, _ = demo
    report = drill("db-corruption", root)
    assert_followed(report)
    assert report["rpo_seconds"] <= 5, report
    assert report["rpo_trades_lost"] == 0, report  # every committed trade is back
    assert report["trades_after_recovery"] >= report["trades_before_fault"]
    assert ("restore", "success", 0) in journal_runs(root)
    # The damaged database made the app answer 500s, which feeds the rollback alert; the
    # database fault outranks it: a restore ran, no rollback did, and replication resumed.
    assert report["app_5xx_after_fault"] > 0, report
    assert report["other_actions_since_fault"] == "none", report
    assert report["replication"] == "proven", report
    assert list((root / "quarantine").glob("*/trading.db")), "the damaged database is kept"
    subjects = [str(m["Subject"]) for _, m in read_mail(root / "mail")]
    assert any(report["triggered_by"] in s for s in subjects)


def test_a_person_restores_from_a_snapshot(demo):
    """`pitwatch restore --from snapshot` by hand, on the running demo platform."""
    root, _ = demo
    cfg = root / "pitwatch.yml"
    assert backups.list_snapshots(root / "backups"), "the demo's schedule took a snapshot at start"
    before = set((root / "quarantine").glob("*"))
    drills._corrupt_database(drills.Platform(config.load(cfg), root, "", lambda name: None),
                             drills.Report("by-hand", "", None))
    proc = subprocess.run([sys.executable, "-m", "pitwatch", "restore", "--from", "snapshot",
                           "--config", str(cfg)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "RTO " in proc.stdout and "RPO " in proc.stdout
    assert backups.integrity_check(root / "trading.db") == (True, "ok")
    # A new quarantine, the newest; older ones beyond backups.quarantine_keep are pruned.
    assert sorted((root / "quarantine").glob("*"))[-1] not in before
    assert requests.get(config.load(cfg).platform.app_url + "/health", timeout=5).status_code == 200


def test_every_dashboard_panel_has_data(demo):
    root, _ = demo
    url = drills.prometheus_url(root)
    missing: list = []

    def every_panel_has_data() -> bool:
        missing[:] = panels_without_data(url, range_seconds=600, scrape_interval=5)
        return not missing

    # Background checks (restore test, probes) land within their first interval.
    try:
        wait_until(every_panel_has_data, 120, interval=5, what="data for every panel")
    except TimeoutError:
        pass
    assert missing == []


def test_stopped_backups_page_people_and_nothing_acts(demo):
    root, _ = demo
    runs_before = journal_runs(root)
    report = drill("stale-backup", root)
    t = report["timeline_seconds"]
    assert report["recovered"] and report["alert"] == "LitestreamDown"
    assert t["alert pending"] <= t["alert firing"] <= t["mail received"]
    assert "healthy again" not in t and "action started" not in t
    assert report["mail_subject"].startswith("[FIRING:CRITICAL] LitestreamDown")
    assert journal_runs(root) == runs_before  # no automatic action for backups


def test_stop_leaves_no_process_behind(demo):
    root, child = demo
    pids = [c["pid"] for c in json.loads((root / "run" / "stack.json").read_text())["components"]
            if c.get("pid")]
    app_pid = int((root / "run" / "app.pid").read_text())  # restarted by the rollback
    child.proc.send_signal(2)  # Ctrl-C
    child.proc.wait(STACK_STARTUP)
    wait_until(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                               for p in [*pids, app_pid]), EVENTUALLY, what="every component to stop")
    assert not os.path.exists(root / "run" / "app.pid")
    # Litestream was stopped and started outside the stack's children (the restore's
    # stop/start commands): no process may still replicate this demo's database.
    assert not [p for p in psutil.process_iter(["cmdline", "status"])
                if str(root / "litestream.yml") in (p.info["cmdline"] or [])
                and p.info["status"] != "zombie"]
