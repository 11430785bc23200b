"""A platform without any snapshot pages: the backup collector exports
``pitwatch_backup_snapshots_retained 0`` for an empty folder, and the shipped
BackupSnapshotTooOld rule, fed exactly that exposition, fires at its ``for`` boundary."""
from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from pitwatch.core import backups
from pitwatch.exporters.backup import BackupCollector
from support.fixtures import make_db, samples, success, value

RULES = Path(__file__).resolve().parent.parent / "alerts" / "rules" / "backup.yml"


def exposition(tmp_path, snapshot: bool) -> dict:
    db = make_db(tmp_path / "trading.db", trades=10)
    (tmp_path / "snaps").mkdir()
    if snapshot:
        backups.snapshot(db, tmp_path / "snaps")
    return samples(BackupCollector(db, tmp_path / "snaps"))


def promtool_case(tmp_path, got: dict, eval_time: str, expected: list) -> subprocess.CompletedProcess:
    """The collector's samples as constant series of job exporter, and one alert test."""
    series = []
    for (name, labels), v in got.items():
        if name.startswith("pitwatch_backup_"):
            lab = ", ".join([f'{k}="{val}"' for k, val in labels] +
                            ['job="exporter"', 'instance="exporter:9108"'])
            series.append({"series": f"{name}{{{lab}}}", "values": f"{v!r}x100"})
    doc = {"rule_files": [str(RULES)], "evaluation_interval": "5s",
           "tests": [{"interval": "5s", "input_series": series,
                      "alert_rule_test": [{"eval_time": eval_time, "alertname": "BackupSnapshotTooOld",
                                           "exp_alerts": expected}]}]}
    path = tmp_path / "case.yml"
    path.write_text(yaml.safe_dump(doc))
    return subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True)


FIRING = [{"exp_labels": {"severity": "critical", "job": "exporter", "instance": "exporter:9108"},
           "exp_annotations": {
               "summary": "The newest database snapshot is older than the 1 h RPO.",
               "description": "There is no complete snapshot on exporter:9108 at all (RPO 1h).",
               "value": "no snapshot",
               "runbook_url": "https://github.com/pitwatch/pitwatch/blob/main/alerts/runbook.md"
                              "#backupsnapshottooold"}}]


def test_an_empty_snapshot_folder_is_zero_retained_and_pages(tmp_path):
    got = exposition(tmp_path, snapshot=False)
    assert value(got, "pitwatch_backup_snapshots_retained") == 0
    assert value(got, "pitwatch_backup_snapshot_last_success_timestamp_seconds") is None
    assert success(got, "backup") == 1
    before = promtool_case(tmp_path, got, "295s", [])
    assert before.returncode == 0, before.stdout + before.stderr
    at = promtool_case(tmp_path, got, "300s", FIRING)
    assert at.returncode == 0, at.stdout + at.stderr


def test_a_fresh_snapshot_stays_silent(tmp_path):
    got = exposition(tmp_path, snapshot=True)
    assert value(got, "pitwatch_backup_snapshots_retained") == 1
    # The series are constant from t=0 while promtool's clock starts at 0: a snapshot
    # "taken now" is fresh throughout the test.
    got = {k: (0.0 if k[0].endswith("timestamp_seconds") else v) for k, v in got.items()}
    out = promtool_case(tmp_path, got, "10m", [])
    assert out.returncode == 0, out.stdout + out.stderr
