"""The shipped alertmanager.yml in a real Alertmanager: the smoke alerts page only when
the instrumented app's own alerts do not already speak for the same outage, and a
database fault holds back the rollback its errors would ask for."""
from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from pitwatch.core.procs import Child, free_port, wait_http
from support.waiting import STARTUP, wait_until

AM_CONFIG = Path(__file__).resolve().parent.parent / "alerts" / "alertmanager.yml"


def shipped_config(token: Path) -> dict:
    """alerts/alertmanager.yml as shipped: routes and inhibit_rules untouched; only the
    template folder and the webhook's token file point at real files here."""
    config = yaml.safe_load(AM_CONFIG.read_text())
    config["templates"] = [str(AM_CONFIG.parent / t) for t in config["templates"]]
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"http://127.0.0.1:{free_port()}/alerts"  # nothing listens
            hook["http_config"]["authorization"]["credentials_file"] = str(token)
    return config


@pytest.fixture
def am(tmp_path):
    token = tmp_path / "token"
    token.write_text("t\n")
    port = free_port()
    # Only the alerts' state is looked at here, not what is delivered.
    (tmp_path / "am.yml").write_text(yaml.safe_dump(shipped_config(token), sort_keys=False))
    child = Child("alertmanager", [
        "prometheus-alertmanager", f"--config.file={tmp_path / 'am.yml'}",
        f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address="], log=tmp_path / "alertmanager.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/-/ready", timeout=STARTUP, proc=child)
        yield base
    finally:
        child.stop()


def post(base: str, *alerts: tuple[str, dict]) -> None:
    now = datetime.now(timezone.utc).isoformat()
    body = [{"labels": {"alertname": name, **labels}, "startsAt": now} for name, labels in alerts]
    req = urllib.request.Request(f"{base}/api/v2/alerts", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def states(base: str) -> dict[tuple[str, str], str]:
    with urllib.request.urlopen(f"{base}/api/v2/alerts", timeout=10) as resp:
        alerts = json.load(resp)
    return {(a["labels"]["alertname"], a["labels"].get("url", "")): a["status"]["state"]
            for a in alerts}


SMOKE = {"severity": "critical", "job": "exporter", "instance": "exporter:9108", "url": "health"}
SLOW = {**SMOKE, "severity": "warning"}
ERRORS = {"severity": "critical", "remediation": "rollback", "job": "app"}


@pytest.mark.slow  # starts an Alertmanager
def test_smoke_alerts_page_alone_and_yield_to_the_apps_own(am):
    # An app without request metrics: only the smoke alert fires, and it pages.
    post(am, ("AppSmokeFailing", SMOKE), ("AppSmokeSlow", {**SLOW, "url": "quotes"}))
    wait_until(lambda: states(am).get(("AppSmokeFailing", "health")) == "active", 30,
               what="the smoke alert active")
    assert states(am)[("AppSmokeSlow", "quotes")] == "active"

    # The instrumented app reports the same outage: its alert (which may roll back)
    # speaks for it, the smoke page is held back.
    post(am, ("AppHighErrorRate", ERRORS), ("AppHighLatency", {"severity": "warning", "job": "app"}))
    wait_until(lambda: states(am).get(("AppSmokeFailing", "health")) == "suppressed", 30,
               what="the smoke failure inhibited")
    wait_until(lambda: states(am).get(("AppSmokeSlow", "quotes")) == "suppressed", 30,
               what="the smoke slowness inhibited")
    assert states(am)[("AppHighErrorRate", "")] == "active"


@pytest.mark.slow
def test_a_failing_url_silences_its_own_slowness_only(am):
    post(am, ("AppSmokeFailing", SMOKE), ("AppSmokeSlow", SLOW),
         ("AppSmokeSlow", {**SLOW, "url": "quotes"}))
    wait_until(lambda: states(am).get(("AppSmokeSlow", "health")) == "suppressed", 30,
               what="the failing URL's slowness inhibited")
    assert states(am)[("AppSmokeSlow", "quotes")] == "active"
    assert states(am)[("AppSmokeFailing", "health")] == "active"


@pytest.mark.slow
@pytest.mark.parametrize("cause,labels", [
    ("AppDown", {"severity": "critical", "remediation": "restart", "job": "app"}),
    ("AppDatabaseCorruption", {"severity": "critical", "remediation": "restore", "job": "app"}),
    ("DatabaseIntegrityCheckFailed", {"severity": "critical", "remediation": "restore",
                                      "job": "exporter", "instance": "exporter:9108"}),
])
def test_an_alert_naming_the_cause_silences_the_smoke_failure(am, cause, labels):
    post(am, (cause, labels), ("AppSmokeFailing", SMOKE))
    wait_until(lambda: states(am).get(("AppSmokeFailing", "health")) == "suppressed", 30,
               what=f"the smoke failure inhibited by {cause}")
    assert states(am)[(cause, "")] == "active"


@pytest.mark.slow
def test_other_alerts_leave_the_smoke_failure_paging(am):
    # Redis may be down without the app's health failing: both are told.
    post(am, ("RedisDown", {"severity": "critical", "job": "exporter", "instance": "exporter:9108"}),
         ("AppSmokeFailing", SMOKE))
    wait_until(lambda: states(am).get(("AppSmokeFailing", "health")) == "active", 30,
               what="the smoke failure active")
    time.sleep(1)  # the inhibition is computed when asked: a second look agrees
    assert states(am)[("AppSmokeFailing", "health")] == "active"


def inhibited(base: str) -> dict[str, list[str]]:
    """amtool's view: alertname -> the alertnames inhibiting it."""
    out = subprocess.run(["amtool", "alert", "query", "--active", "--inhibited", "-o", "json",
                          f"--alertmanager.url={base}"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    alerts = json.loads(out.stdout)
    names = {a["fingerprint"]: a["labels"]["alertname"] for a in alerts}
    return {a["labels"]["alertname"]: sorted(names.get(f, f) for f in a["status"]["inhibitedBy"])
            for a in alerts if a["status"]["state"] == "suppressed"}


DB_FAULTS = {
    "DatabaseIntegrityCheckFailed": {"severity": "critical", "remediation": "restore",
                                     "job": "exporter", "instance": "exporter:9108"},
    "AppDatabaseCorruption": {"severity": "critical", "remediation": "restore", "job": "app"},
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", DB_FAULTS)
def test_a_database_fault_holds_back_the_rollback(am, fault):
    # The errors of a damaged database ask for a rollback: the restore is the answer.
    post(am, (fault, DB_FAULTS[fault]), ("AppHighErrorRate", ERRORS))
    wait_until(lambda: inhibited(am).get("AppHighErrorRate") == [fault], 30,
               what=f"the rollback alert inhibited by {fault}")
    assert states(am)[(fault, "")] == "active"


@pytest.mark.slow
def test_database_errors_alone_leave_the_rollback_to_act(am):
    # Locked/other SQLite errors are not damage, and a bad release causes them too.
    post(am, ("AppDatabaseErrors", {"severity": "warning", "job": "app", "kind": "other"}),
         ("AppHighErrorRate", ERRORS))
    wait_until(lambda: states(am).get(("AppHighErrorRate", "")) == "active", 30,
               what="the rollback alert active")
    time.sleep(1)  # the inhibition is computed when asked: a second look agrees
    assert states(am)[("AppHighErrorRate", "")] == "active"
    assert inhibited(am) == {}
