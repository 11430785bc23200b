"""The drills end to end on the real demo stack: Prometheus, Alertmanager, mail, the
remediator and the app, with the shipped rules, routes and timings."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from pitwatch.mailsink import read_mail

pytestmark = pytest.mark.slow


def drill(scenario: str, root) -> dict:
    proc = subprocess.run([sys.executable, "-m", "pitwatch", "drill", scenario, str(root), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    return json.loads(proc.stdout)


def journal_runs(root) -> list[tuple]:
    conn = sqlite3.connect(root / "state" / "journal.db")
    try:
        return conn.execute("select action, status, exit_code from runs").fetchall()
    finally:
        conn.close()


def assert_followed(report: dict, action: str) -> None:
    t = report["timeline_seconds"]
    assert report["recovered"] and report["action_result"] == "success"
    for event in ("alert pending", "alert firing", "mail received", "webhook received",
                  "action started", "action finished", "healthy again"):
        assert event in t, f"{event} missing from {t}"
    assert 0 < t["alert pending"] <= t["alert firing"] <= t["webhook received"]
    assert t["webhook received"] <= t["action started"] <= t["action finished"] <= t["healthy again"]
    assert report["mttr_seconds"] == t["healthy again"]


def test_bad_release_is_rolled_back(tmp_path):
    report = drill("bad-release", tmp_path)
    assert_followed(report, "rollback")
    assert report["mail_subject"].startswith("[FIRING:CRITICAL] AppHighErrorRate")
    assert (tmp_path / "releases" / "current").resolve().name == "1.4.2"
    assert ("rollback", "success", 0) in journal_runs(tmp_path)
    subjects = [str(m["Subject"]) for _, m in read_mail(tmp_path / "mail")]
    assert any("AppHighErrorRate" in s for s in subjects)


def test_corrupted_database_is_restored(tmp_path):
    report = drill("db-corruption", tmp_path)
    assert_followed(report, "restore")
    assert report["rpo_trades_lost"] == 0 or report["rpo_seconds"] <= 5
    assert report["trades_after_recovery"] >= report["trades_before_fault"] - 10
    assert ("restore", "success", 0) in journal_runs(tmp_path)
    quarantined = list((tmp_path / "quarantine").glob("*/trading.db"))
    assert quarantined, "the damaged database is kept in quarantine/"
