"""The shipped alertmanager.yml in a real Alertmanager: an alert posted to its API
arrives as mail at a real SMTP server and, when it carries a `remediation` label, at a
real HTTP endpoint with the bearer token, in the v4 webhook format.

It is rendered by ``pitwatch render`` as a real install's is: only addresses, people and
secrets change; the routes, timings and templates are the shipped ones.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from pitwatch.mailsink import read_mail, serve
from pitwatch.core.procs import Child, free_port, wait_http
from support import rendered
from support.waiting import EVENTUALLY, STARTUP, holds, wait_until

ROOT = Path(__file__).resolve().parent.parent
AM_CONFIG = ROOT / "alerts" / "alertmanager.yml"
TOKEN = "s3cret-token-for-the-test"


class Hook(BaseHTTPRequestHandler):
    received: list[tuple[dict, dict]] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append((dict(self.headers), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def stack(tmp_path):
    smtp_port, hook_port, am_port = free_port(), free_port(), free_port()
    token_file = tmp_path / "webhook_token"
    token_file.write_text(TOKEN + "\n")
    config_file = rendered.alertmanager(tmp_path / "rendered", f"127.0.0.1:{smtp_port}",
                                        "oncall@example.test", f"http://127.0.0.1:{hook_port}",
                                        token_file)

    smtp = serve(tmp_path / "mail", "127.0.0.1", smtp_port)
    Hook.received = []
    hook = ThreadingHTTPServer(("127.0.0.1", hook_port), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    am = Child("alertmanager", [
        "prometheus-alertmanager", f"--config.file={config_file}",
        f"--storage.path={tmp_path / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{am_port}",
        f"--web.external-url=http://127.0.0.1:{am_port}",
        "--cluster.listen-address=",
    ], log=tmp_path / "alertmanager.log")
    try:
        wait_http(f"http://127.0.0.1:{am_port}/-/ready", timeout=STARTUP, proc=am)
        yield {"am": f"http://127.0.0.1:{am_port}", "mail": tmp_path / "mail", "proc": am}
    finally:
        am.stop()
        hook.shutdown()
        smtp.stop()


def post_alerts(base: str, alerts: list[dict]) -> None:
    req = urllib.request.Request(f"{base}/api/v2/alerts", data=json.dumps(alerts).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def text_of(mail) -> str:
    return mail.get_body(preferencelist=("plain",)).get_content()


def alert(name: str, labels: dict, value: str, description: str) -> dict:
    return {
        "labels": {"alertname": name, **labels},
        "annotations": {
            "summary": f"{name} summary.",
            "description": description,
            "value": value,
            "runbook_url": f"https://github.com/pitwatch/pitwatch/blob/main/alerts/runbook.md#{name.lower()}",
        },
        "startsAt": datetime.now(timezone.utc).isoformat(),
        "generatorURL": f"http://prometheus.test:9090/graph?g0.expr={name}",
    }


@pytest.mark.slow  # starts an Alertmanager
def test_mail_and_webhook_from_a_real_alertmanager(stack):
    started = time.monotonic()
    post_alerts(stack["am"], [
        alert("AppHighErrorRate", {"severity": "critical", "remediation": "rollback", "job": "app"},
              "83.33% 5xx", "83.33% of the requests to app failed with a 5xx status."),
        alert("BackupSnapshotTooOld", {"severity": "critical", "job": "exporter",
                                       "instance": "exporter:9108"},
              "snapshot 1h 5m 5s old", "The last successful snapshot was taken 1h 5m 5s ago."),
        alert("Watchdog", {"severity": "info"}, "heartbeat", "Always firing."),
        alert("RemediationDryRun", {"severity": "info", "job": "remediator"},
              "1 dry-run decisions", "1 remediation decision(s) in dry-run mode."),
    ])

    wait_until(lambda: len(read_mail(stack["mail"])) >= 2 and Hook.received, EVENTUALLY,
               interval=0.2, what="two mails and the webhook" + stack["proc"].tail())
    elapsed = time.monotonic() - started
    assert elapsed < 20, f"critical routes wait 5 s, not {elapsed:.0f} s"
    # Anything else that was going to arrive with them would arrive now.
    holds(lambda: len(read_mail(stack["mail"])) == 2 and len(Hook.received) == 1, 2,
          what="two mails and one webhook call, nothing more")

    mails = {m["Subject"]: m for _, m in read_mail(stack["mail"])}
    assert set(mails) == {
        "[FIRING:CRITICAL] AppHighErrorRate: 83.33% 5xx",
        "[FIRING:CRITICAL] BackupSnapshotTooOld: snapshot 1h 5m 5s old",
    }, "info alerts and the Watchdog are not mailed"
    mail = mails["[FIRING:CRITICAL] AppHighErrorRate: 83.33% 5xx"]
    assert mail["To"] == "oncall@example.test"
    assert mail.get_body(preferencelist=("html",)) is None, "plain text only"
    body = text_of(mail)
    assert "83.33% of the requests to app failed with a 5xx status." in body
    assert "Runbook:    https://github.com/pitwatch/pitwatch/blob/main/alerts/runbook.md#apphigherrorrate" in body
    assert "Prometheus: http://prometheus.test:9090/graph?g0.expr=AppHighErrorRate" in body
    assert "Automatic:  the remediator is asked to rollback" in body
    assert f"Silence or see all alerts: {stack['am']}" in body
    assert "Automatic:" not in text_of(mails["[FIRING:CRITICAL] BackupSnapshotTooOld: snapshot 1h 5m 5s old"])

    assert len(Hook.received) == 1, "only the remediation alert reaches the remediator"
    headers, payload = Hook.received[0]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert payload["version"] == "4"
    assert payload["receiver"] == "remediator"
    assert payload["status"] == "firing"
    assert payload["externalURL"] == stack["am"]
    [sent] = payload["alerts"]
    assert sent["labels"] == {"alertname": "AppHighErrorRate", "severity": "critical",
                              "remediation": "rollback", "job": "app"}
    assert sent["status"] == "firing" and sent["fingerprint"] and sent["startsAt"]
    assert sent["annotations"]["value"] == "83.33% 5xx"


def test_the_rendered_config_is_valid(tmp_path):
    """What the renderer writes still loads in amtool and keeps the shipped routes."""
    import subprocess

    path = rendered.alertmanager(tmp_path, "mail.test:2525", "ops@example.test",
                                 "https://remediator.test", tmp_path / "t")
    out = subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    config = yaml.safe_load(path.read_text())
    hook = next(r for r in config["receivers"] if r["name"] == "remediator")["webhook_configs"][0]
    assert hook["url"] == "https://remediator.test/alerts"
    shipped = yaml.safe_load(AM_CONFIG.read_text())
    assert config["route"] == shipped["route"] and config["inhibit_rules"] == shipped["inhibit_rules"]
    assert {"source_matchers": ['remediation="restore"'],
            "target_matchers": ['remediation="rollback"']} in config["inhibit_rules"]


def hooked() -> list[tuple[str, str]]:
    """(alertname, status) of every alert the webhook was sent, in order."""
    return [(a["labels"]["alertname"], a["status"]) for _, p in Hook.received for a in p["alerts"]]


@pytest.mark.slow  # starts an Alertmanager, waits out a group_interval
def test_a_database_fault_reaches_the_remediator_and_its_rollback_does_not(stack):
    fault = alert("DatabaseIntegrityCheckFailed", {"severity": "critical", "remediation": "restore",
                                                   "job": "exporter", "instance": "exporter:9108"},
                  "integrity check failed", "quick_check found problems.")
    errors = alert("AppHighErrorRate", {"severity": "critical", "remediation": "rollback",
                                        "job": "app"}, "40% 5xx", "40% of the requests failed.")
    post_alerts(stack["am"], [fault, errors])
    wait_until(lambda: Hook.received and len(read_mail(stack["mail"])) >= 1, EVENTUALLY,
               interval=0.2, what="the restore's webhook and mail" + stack["proc"].tail())
    # Both groups wait the same 5 s: had the rollback been let through, it would be here.
    holds(lambda: hooked() == [("DatabaseIntegrityCheckFailed", "firing")], 3,
          what="the restore alone at the remediator")
    assert [m["Subject"] for _, m in read_mail(stack["mail"])] == \
        ["[FIRING:CRITICAL] DatabaseIntegrityCheckFailed: integrity check failed"]

    # Restored: the fault resolves, and the rollback alert (if still firing) goes out at
    # its group's next interval (30 s), for the remediator to judge afresh.
    post_alerts(stack["am"], [{**fault, "endsAt": datetime.now(timezone.utc).isoformat()}, errors])
    wait_until(lambda: ("AppHighErrorRate", "firing") in hooked(), 45, interval=0.5,
               what="the rollback alert after the fault resolved" + stack["proc"].tail())
    assert ("DatabaseIntegrityCheckFailed", "resolved") in hooked()


def test_the_remediator_believes_a_firing_alert_between_re_sends():
    """blocked_by forgets a fault it is not told about again within FIRING_TTL: the
    remediator route re-sends a firing alert more often than that."""
    from pitwatch.core.config import parse_duration
    from pitwatch.remediation.policy import FIRING_TTL

    shipped = yaml.safe_load(AM_CONFIG.read_text())
    route = next(r for r in shipped["route"]["routes"] if r["receiver"] == "remediator")
    assert parse_duration(route["repeat_interval"]) + parse_duration(route["group_interval"]) \
        < FIRING_TTL


@pytest.mark.slow  # starts an Alertmanager
def test_one_redis_down_pages_once(stack):
    """RedisDown (the exporter's PING) and RemediationRedisDown (the remediators') say the
    same outage: only RedisDown is mailed. Alone, RemediationRedisDown still pages."""
    remediators = alert("RemediationRedisDown", {"severity": "critical", "job": "remediator",
                                                 "instance": "remediator:9095"},
                        "remediator:9095 without Redis", "No Redis for the claims.")
    post_alerts(stack["am"], [
        alert("RedisDown", {"severity": "critical", "job": "exporter", "instance": "exporter:9108"},
              "Redis down", "Redis has not answered PING for a minute."),
        remediators,
    ])
    wait_until(lambda: read_mail(stack["mail"]), EVENTUALLY, interval=0.2,
               what="the RedisDown mail" + stack["proc"].tail())
    # Both groups wait the same 5 s: a second page would be here by now.
    holds(lambda: len(read_mail(stack["mail"])) == 1, 3, what="one page")
    assert [m["Subject"] for _, m in read_mail(stack["mail"])] == \
        ["[FIRING:CRITICAL] RedisDown: Redis down"]
    with urllib.request.urlopen(f"{stack['am']}/api/v2/alerts", timeout=10) as resp:
        state = {a["labels"]["alertname"]: a["status"] for a in json.load(resp)}
    assert state["RemediationRedisDown"]["state"] == "suppressed"
    assert state["RemediationRedisDown"]["inhibitedBy"]


@pytest.mark.slow  # starts an Alertmanager
def test_a_remediators_own_redis_down_pages_alone(stack):
    post_alerts(stack["am"], [alert("RemediationRedisDown", {
        "severity": "critical", "job": "remediator", "instance": "remediator:9095"},
        "remediator:9095 without Redis", "No Redis for the claims.")])
    wait_until(lambda: read_mail(stack["mail"]), EVENTUALLY, interval=0.2,
               what="the RemediationRedisDown mail" + stack["proc"].tail())
    assert [m["Subject"] for _, m in read_mail(stack["mail"])] == \
        ["[FIRING:CRITICAL] RemediationRedisDown: remediator:9095 without Redis"]
