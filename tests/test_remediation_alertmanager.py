"""End to end: a real Alertmanager 0.25 delivers to a real receiver (bearer token from a
file), whose built-in `rollback` action rolls a real little platform back."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
import yaml

from pitwatch.core.procs import Child, free_port, wait_http
from support.toy_platform import make_platform
from support.remediation import Receiver, journal_rows, remediation_config
from support.waiting import EVENTUALLY, STARTUP, wait_until

pytestmark = pytest.mark.slow  # starts an Alertmanager


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def stack(tmp_path):
    platform = make_platform(tmp_path / "platform", {"v1": True, "v2": False}, current="v2")
    rport = free_port()
    rem = remediation_config(tmp_path, rport, policy=[
        {"name": "rollback_bad_release", "match": {"remediation": "rollback"},
         "action": "rollback", "cooldown": "30m", "max_runs": 2, "window": "6h",
         "timeout": "60s"}])
    platform.write_config(remediation=rem)
    receiver = Receiver(platform.config, rport, tmp_path / "remediator.log")
    am_port = free_port()
    am_cfg = tmp_path / "alertmanager.yml"
    am_cfg.write_text(yaml.safe_dump({
        "route": {"receiver": "remediation", "group_by": ["alertname"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "2s"},
        "receivers": [{"name": "remediation", "webhook_configs": [{
            "url": f"http://127.0.0.1:{rport}/alerts", "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer",
                                              "credentials_file": str(tmp_path / "token")}}}]}],
    }))
    am = Child("alertmanager", ["prometheus-alertmanager", f"--config.file={am_cfg}",
                                f"--storage.path={tmp_path / 'am'}",
                                f"--web.listen-address=127.0.0.1:{am_port}",
                                "--cluster.listen-address="], log=tmp_path / "am.log")
    wait_http(f"http://127.0.0.1:{am_port}/-/ready", STARTUP, proc=am)
    yield platform, receiver, f"http://127.0.0.1:{am_port}", tmp_path / "journal" / "journal.db"
    am.stop()
    receiver.stop()
    platform.stop()


def test_alertmanager_delivery_rolls_back_once(stack):
    platform, receiver, am, journal = stack
    assert platform.version() == "v2" and not platform.healthy()
    labels = {"alertname": "BadRelease", "remediation": "rollback", "severity": "critical"}
    starts = datetime.now(timezone.utc) - timedelta(seconds=5)

    def fire(starts_at, ends_at=None):
        a = {"labels": labels, "startsAt": iso(starts_at)}
        if ends_at:
            a["endsAt"] = iso(ends_at)
        requests.post(f"{am}/api/v2/alerts", json=[a], timeout=5).raise_for_status()

    fire(starts)
    wait_until(lambda: platform.healthy() and platform.version() == "v1", EVENTUALLY, what="rollback")
    # Keep the alert firing for a few of Alertmanager's 2 s repeats: none may act again.
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        fire(starts)
        time.sleep(1)
    notes = journal_rows(journal, "select count(*) from notifications")[0][0]
    assert notes >= 3
    runs = journal_rows(journal, "select action, status, exit_code from runs")
    assert runs == [("rollback", "success", 0)]
    assert platform.current() == "v1"
    # Resolved is recorded; the same alert firing again later is held by the cooldown.
    fire(starts, datetime.now(timezone.utc))
    wait_until(lambda: journal_rows(journal, "select count(*) from decisions where reason='resolved'")[0][0] >= 1,
               EVENTUALLY, what="the resolved notification")
    fire(datetime.now(timezone.utc))
    wait_until(lambda: journal_rows(journal, "select count(*) from decisions where reason='cooldown'")[0][0] >= 1,
               EVENTUALLY, what="the re-fired episode")
    assert journal_rows(journal, "select count(*) from runs") == [(1,)]
    run = receiver.runs()[0]
    assert "rolled back to v1" in run["output"]
