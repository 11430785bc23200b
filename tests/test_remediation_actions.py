"""`pitwatch actions` and GET /actions after a real rollback: a toy platform with a bad
release, a real remediator, the journal read back from the file and through the API."""
from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from pitwatch.core.procs import free_port
from support.remediation import PY, TOKEN, Receiver, alert, notification, remediation_config
from support.toy_platform import make_platform
from support.waiting import EVENTUALLY, wait_until

READ_TOKEN = "read-only-token-for-tests"
RULE = {"name": "rollback_bad_release", "match": {"remediation": "rollback"},
        "action": "rollback", "cooldown": "30m", "max_runs": 2, "window": "6h", "timeout": "60s"}


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def bad_release(starts: datetime, fingerprint: str = "bad01") -> dict:
    return alert("BadRelease", fingerprint=fingerprint, starts_at=iso(starts),
                 remediation="rollback", severity="critical", job="app")


def get_actions(receiver, token=READ_TOKEN, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(receiver.url + "/actions", params=params, headers=headers, timeout=30)


@pytest.fixture
def rolled_back(tmp_path):
    """A platform on an unhealthy v2 that the remediator rolled back to v1."""
    platform = make_platform(tmp_path / "platform", {"v1": True, "v2": False}, current="v2")
    port = free_port()
    (tmp_path / "read_token").write_text(READ_TOKEN + "\n")
    platform.write_config(remediation=remediation_config(
        tmp_path, port, policy=[RULE], read_token_file=str(tmp_path / "read_token")))
    receiver = Receiver(platform.config, port, tmp_path / "remediator.log")
    try:
        started = datetime.now(timezone.utc) - timedelta(seconds=5)
        assert receiver.post(notification([bad_release(started)])).status_code == 200
        wait_until(lambda: get_actions(receiver).json()["runs"][0]["status"] not in ("queued", "running"),
                   EVENTUALLY, what="the rollback to end")
        yield platform, receiver, started
    finally:
        receiver.stop()
        platform.stop()


def test_actions_show_the_rollback_and_the_cooldown(rolled_back):
    platform, receiver, started = rolled_back
    assert platform.version() == "v1" and platform.healthy()
    # The same alert fires again as a new episode inside the 30 min cooldown.
    again = datetime.now(timezone.utc)
    assert receiver.post(notification([bad_release(again)])).status_code == 200

    text = platform.pitwatch("actions")
    assert text.returncode == 0, text.stderr
    out = text.stdout
    print(out)
    assert "rule rollback_bad_release: rollback -> success" in out
    assert f"trigger: BadRelease {{job=app, remediation=rollback, severity=critical}} " \
           f"started {iso(started)}" in out
    assert "changed: release v2 -> v1" in out
    assert "verdict: rolled back to v1; the app is healthy" in out
    assert "| rolled back to v1; the app is healthy" in out  # the output tail
    assert "rule rollback_bad_release: suppressed (cooldown)" in out
    assert f"started {iso(again)}" in out
    # Oldest first: the rollback, then the held-back episode.
    assert out.index("-> success") < out.index("suppressed (cooldown)")

    # The API answers the same, with the read token (the webhook token reads too).
    doc = get_actions(receiver).json()
    assert doc == get_actions(receiver, token=TOKEN).json()
    run, = doc["runs"]
    assert run["trigger"]["alertname"] == "BadRelease"
    assert run["trigger"]["labels"]["remediation"] == "rollback"
    assert run["trigger"]["starts_at"] == iso(started)
    assert run["summary"]["from_version"] == "v2" and run["summary"]["to_version"] == "v1"
    assert run["duration"] is not None and run["duration"] >= 0
    held, = doc["decisions"]
    assert (held["outcome"], held["reason"], held["rule"]) == ("suppressed", "cooldown",
                                                               "rollback_bad_release")
    assert held["trigger"]["labels"]["severity"] == "critical"

    # The command through the API, as JSON, with filters.
    remote = platform.pitwatch("actions", "--url", receiver.url, "--json")
    assert remote.returncode == 0, remote.stderr
    assert json.loads(remote.stdout) == get_actions(receiver, limit=20).json()
    only = json.loads(platform.pitwatch("actions", "--outcome", "cooldown", "--json").stdout)
    assert only["runs"] == [] and [d["reason"] for d in only["decisions"]] == ["cooldown"]
    succeeded = json.loads(platform.pitwatch("actions", "--outcome", "success", "--json").stdout)
    assert [r["id"] for r in succeeded["runs"]] == [run["id"]] and succeeded["decisions"] == []
    other = json.loads(platform.pitwatch("actions", "--rule", "restore_db", "--json").stdout)
    assert other == {"runs": [], "decisions": []}
    later = iso(datetime.now(timezone.utc) + timedelta(hours=1))
    assert "nothing matches" in platform.pitwatch("actions", "--since", later).stdout
    assert "-> success" in platform.pitwatch("actions", "--since", "2h").stdout

    # The facts reach Prometheus as one info series per action and result.
    metrics = requests.get(receiver.url + "/metrics", timeout=10).text
    info = [line for line in metrics.splitlines()
            if line.startswith("pitwatch_remediation_last_run_info{")]
    assert len(info) == 1, info
    for part in ('action="rollback"', 'result="success"', 'from_version="v2"',
                 'to_version="v1"', 'trigger="BadRelease"', f'run="{run["id"]}"',
                 'rule="rollback_bad_release"'):
        assert part in info[0]


def test_actions_need_a_token_and_the_read_token_cannot_post(rolled_back):
    platform, receiver, _ = rolled_back
    assert get_actions(receiver, token=None).status_code == 401
    assert get_actions(receiver, token="wrong").status_code == 401
    assert get_actions(receiver, token=READ_TOKEN + "x").status_code == 401
    body = notification([bad_release(datetime.now(timezone.utc), "other")])
    assert receiver.post(body, token=READ_TOKEN).status_code == 401
    # Without its token the command through the API says why and fails.
    bad = platform.root / "wrong_token"
    bad.write_text("nope\n")
    out = platform.pitwatch("actions", "--url", receiver.url, "--token-file", str(bad))
    assert out.returncode == 1 and "401" in out.stderr


def test_follow_prints_new_entries_until_interrupted(rolled_back):
    platform, receiver, started = rolled_back
    proc = subprocess.Popen([PY, "-m", "pitwatch", "actions", "--config", str(platform.config),
                             "--follow", "--json", "--interval", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stdout.readline())
        assert first["kind"] == "run" and first["status"] == "success"
        # Alertmanager re-sends the rolled-back episode: held back as a duplicate.
        assert receiver.post(notification([bad_release(started)])).status_code == 200
        entry = json.loads(proc.stdout.readline())
        assert (entry["kind"], entry["outcome"], entry["reason"]) == ("decision", "suppressed",
                                                                     "duplicate")
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(EVENTUALLY) == 130
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.slow  # starts Prometheus and Alertmanager
def test_the_rollback_mail_names_the_trigger_and_the_versions(tmp_path):
    """Alertmanager (rendered as installed) asks the remediator to roll back; Prometheus
    (the shipped remediation rules) sees the run and its facts; the mail names them."""
    import yaml

    from pitwatch.core.procs import Child, wait_http
    from pitwatch.mailsink import read_mail, serve
    from support import rendered
    from support.waiting import STARTUP

    platform = make_platform(tmp_path / "platform", {"v1": True, "v2": False}, current="v2")
    rport, am_port, prom_port, smtp_port = free_port(), free_port(), free_port(), free_port()
    platform.write_config(remediation=remediation_config(tmp_path, rport, policy=[RULE]))
    receiver = Receiver(platform.config, rport, tmp_path / "remediator.log")
    am_file = rendered.alertmanager(tmp_path / "rendered", f"127.0.0.1:{smtp_port}",
                                    "oncall@example.test", receiver.url, tmp_path / "token")
    am_cfg = yaml.safe_load(am_file.read_text())
    for route in am_cfg["route"]["routes"]:  # the warning route waits a minute: not here
        if route["receiver"] == "mail-warning":
            route["group_wait"] = "1s"
    am_file.write_text(yaml.safe_dump(am_cfg))
    prom_cfg = tmp_path / "prometheus.yml"
    prom_cfg.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rendered.ROOT / "alerts" / "rules" / "remediation.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [{"job_name": "remediator",
                            "static_configs": [{"targets": [f"127.0.0.1:{rport}"]}]}]}))
    smtp = serve(tmp_path / "mail", "127.0.0.1", smtp_port)
    am = Child("alertmanager", ["prometheus-alertmanager", f"--config.file={am_file}",
                                f"--storage.path={tmp_path / 'am'}",
                                f"--web.listen-address=127.0.0.1:{am_port}",
                                "--cluster.listen-address="], log=tmp_path / "am.log")
    prom = Child("prometheus", ["prometheus", f"--config.file={prom_cfg}",
                                f"--storage.tsdb.path={tmp_path / 'prom'}",
                                f"--web.listen-address=127.0.0.1:{prom_port}"],
                 log=tmp_path / "prometheus.log")
    try:
        wait_http(f"http://127.0.0.1:{am_port}/-/ready", STARTUP, proc=am)
        wait_http(f"http://127.0.0.1:{prom_port}/-/ready", STARTUP, proc=prom)
        started = datetime.now(timezone.utc) - timedelta(seconds=5)
        requests.post(f"http://127.0.0.1:{am_port}/api/v2/alerts", timeout=10, json=[{
            "labels": {"alertname": "BadRelease", "remediation": "rollback",
                       "severity": "critical", "job": "app"},
            "startsAt": iso(started)}]).raise_for_status()
        wait_until(lambda: platform.version() == "v1" and platform.healthy(), EVENTUALLY,
                   what="the rollback")

        def performed():
            for _, mail in read_mail(tmp_path / "mail"):
                if "RemediationActionPerformed" in mail["Subject"]:
                    return mail
            return None

        mail = wait_until(performed, EVENTUALLY, what="the RemediationActionPerformed mail")
        text = mail.get_body(("plain",)).get_content()
        print(text)
        assert "Trigger:    BadRelease" in text
        assert "Changed:    release v2 -> v1" in text
        assert "Result:     success: rolled back to v1; the app is healthy" in text
        assert f"Output:     http://127.0.0.1:{rport}/#run-1" in text
        assert "for the alert BadRelease (rule rollback_bad_release, run 1): result success. " \
               "Release v2 -> v1." in text
        assert "Board:      http://localhost:3000/d/pitwatch-remediation" in text
    finally:
        prom.stop()
        am.stop()
        smtp.stop()
        receiver.stop()
        platform.stop()
