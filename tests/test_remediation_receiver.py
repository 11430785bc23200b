"""The webhook receiver's contract (remediation/receiver.py), against a real `pitwatch remediator`."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess

import pytest
import requests
import yaml

from pitwatch.core.procs import free_port
from support.remediation import (PY, TOKEN, Receiver, alert, journal_rows, notification,
                                 remediation_config)
from support.waiting import EVENTUALLY, STARTUP, holds, wait_until

# An action that records its episode, optionally writes its pid, and sleeps.
RECORD = ("import os, sys, time; "
          "open(sys.argv[1], 'a').write(os.environ['PITWATCH_FINGERPRINT'] + ' ' "
          "+ os.environ['PITWATCH_STARTS_AT'] + '\\n'); "
          "open(sys.argv[1] + '.pid', 'w').write(str(os.getpid())); "
          "time.sleep(float(sys.argv[2])); "
          "open(sys.argv[1] + '.done', 'a').write('done\\n')")


def write_config(root, port, sleep=0.0, blocked_by=(), **rem):
    out = root / "ran.txt"
    cfg = {
        "platform": {"database": str(root / "trading.db")},
        "remediation": remediation_config(
            root, port, actions={"record": [PY, "-c", RECORD, str(out), str(sleep)]},
            policy=[{"name": "rollback_bad_release", "match": {"remediation": "rollback"},
                     "action": "record", "cooldown": "1h", "max_runs": 5, "window": "1h",
                     "timeout": "30s", "blocked_by": list(blocked_by)}], **rem),
    }
    path = root / "pitwatch.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path, out


@pytest.fixture
def receiver(tmp_path):
    started = []

    def start(sleep=0.0, **rem):
        port = free_port()
        cfg, out = write_config(tmp_path, port, sleep, **rem)
        r = Receiver(cfg, port, tmp_path / "remediator.log")
        r.out, r.journal = out, tmp_path / "journal" / "journal.db"
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


def runs(r) -> list[dict]:
    """GET /actions with the webhook token (a reader too)."""
    resp = requests.get(r.url + "/actions", headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=30)
    resp.raise_for_status()
    return resp.json()["runs"]


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def test_token_is_required_and_compared(receiver):
    r = receiver()
    body = notification([alert(remediation="rollback")])
    assert r.post(body, token=None).status_code == 401
    assert r.post(body, token="wrong").status_code == 401
    assert r.post(body, token=TOKEN + "x").status_code == 401
    assert r.post(body, token=None, headers={"Authorization": TOKEN}).status_code == 401
    assert journal_rows(r.journal, "select count(*) from notifications") == [(0,)]
    assert r.post(body).status_code == 200
    wait_until(lambda: len(lines(r.out)) == 1, EVENTUALLY, what="the action")


def test_bad_input_is_refused_naming_the_field_and_runs_nothing(receiver):
    r = receiver()
    big = notification([alert(remediation="rollback", big="x" * (2 << 20))])
    resp = r.post(big)
    assert resp.status_code == 413
    cases = {
        b"not json": "body",
        b"[]": "body",
        json.dumps({**notification([alert()]), "version": "3"}).encode(): "version",
        json.dumps({k: v for k, v in notification([alert()]).items() if k != "alerts"}).encode(): "alerts",
        json.dumps(notification([{**alert(), "startsAt": "yesterday"}])).encode(): "alerts[0].startsAt",
        json.dumps(notification([alert(), {**alert(), "labels": {"n": 5}}])).encode(): "alerts[1].labels.n",
        json.dumps(notification([{**alert(), "status": "maybe"}])).encode(): "alerts[0].status",
        json.dumps(notification([{k: v for k, v in alert().items() if k != "fingerprint"}])).encode():
            "alerts[0].fingerprint",
        b'{"version": "4", "alerts": [], "status": "firing", "receiver": "\\ud800", "groupKey": ""}':
            "receiver",
    }
    for raw, field in cases.items():
        resp = r.post(None, raw=raw)
        assert resp.status_code == 400, raw
        assert resp.json()["field"] == field, (raw, resp.json())
        assert field in resp.json()["error"]
    assert journal_rows(r.journal, "select count(*) from notifications") == [(0,)]
    assert not r.out.exists()
    # Unknown fields (a newer Alertmanager) are ignored.
    newer = notification([{**alert(remediation="rollback"), "silencedBy": [], "new": {"x": 1}}],
                         newField=True)
    assert r.post(newer).status_code == 200


def test_journal_row_exists_when_the_ack_arrives(receiver):
    r = receiver()
    for i in range(5):
        resp = r.post(notification([alert(remediation="rollback", fingerprint=f"p{i}"),
                                    alert("Other", fingerprint=f"q{i}")]))
        assert resp.status_code == 200
        # Read by another connection right after the 2xx: already committed.
        assert journal_rows(r.journal, "select count(*) from notifications") == [(i + 1,)]
        assert journal_rows(r.journal, "select count(*) from decisions") == [(2 * (i + 1),)]


def test_503_while_the_journal_cannot_be_written_then_accepted_on_retry(receiver):
    r = receiver()
    holder = sqlite3.connect(r.journal, timeout=1, isolation_level=None)
    holder.execute("begin exclusive")
    try:
        resp = r.post(notification([alert(remediation="rollback")]))
        assert resp.status_code == 503
        assert resp.headers["Retry-After"]
    finally:
        holder.execute("rollback")
        holder.close()
    assert not r.out.exists()  # nothing acts on what was not persisted
    assert r.post(notification([alert(remediation="rollback")])).status_code == 200
    wait_until(lambda: len(lines(r.out)) == 1, EVENTUALLY, what="the action after the retry")


def test_each_alert_alone_and_once_per_episode(receiver):
    r = receiver()
    group = [alert(remediation="rollback", fingerprint="aaa"),
             alert(remediation="rollback", status="resolved", fingerprint="bbb"),
             alert("Unrelated", fingerprint="ccc")]
    # Alertmanager re-sends: repeat_interval, group changes, retries.
    for body in (notification(group), notification(group),
                 notification(group[:1] + [alert("New", fingerprint="ddd")]),
                 notification(group[::-1])):
        assert r.post(body).status_code == 200
    # Every delivery was journalled before its 2xx: one run among them, and it ends.
    assert journal_rows(r.journal, "select d.fingerprint from runs join decisions d "
                                   "on d.id = runs.decision_id") == [("aaa",)]
    wait_until(lambda: runs(r)[0]["status"] != "running", EVENTUALLY, what="the action")
    assert lines(r.out) == ["aaa 2026-11-25T10:00:00.123456789Z"]
    outcomes = journal_rows(r.journal, "select fingerprint, outcome, reason from decisions "
                                       "where notification_id=1 order by alert_index")
    assert outcomes == [("aaa", "act", "policy"), ("bbb", "ignored", "resolved"),
                        ("ccc", "ignored", "no_rule")]
    dupes = journal_rows(r.journal, "select count(*) from decisions where fingerprint='aaa' "
                                    "and outcome='suppressed' and reason='duplicate'")
    assert dupes == [(3,)]
    # The same alert firing again later is a new episode; the cooldown holds it back.
    again = alert(remediation="rollback", fingerprint="aaa", starts_at="2026-11-25T11:00:00Z")
    assert r.post(notification([again])).status_code == 200
    assert journal_rows(r.journal, "select outcome, reason from decisions order by id desc limit 1") \
        == [("suppressed", "cooldown")]
    metrics = requests.get(r.url + "/metrics", timeout=5).text
    assert 'pitwatch_remediation_suppressions_total{reason="duplicate"} 3.0' in metrics
    assert 'pitwatch_remediation_decisions_total{outcome="act"} 1.0' in metrics
    assert "pitwatch_remediation_notifications_received_total 5.0" in metrics


def test_resolved_never_kills_a_running_action(receiver):
    r = receiver(sleep=2.5)
    firing = alert(remediation="rollback")
    assert r.post(notification([firing])).status_code == 200
    wait_until(lambda: runs(r) and runs(r)[0]["status"] == "running", EVENTUALLY, what="running")
    resolved = {**firing, "status": "resolved", "endsAt": "2026-11-25T10:05:00Z"}
    assert r.post(notification([resolved])).status_code == 200
    wait_until(lambda: runs(r)[0]["status"] != "running", EVENTUALLY, what="the run to end")
    assert runs(r)[0]["status"] == "success"
    assert lines(r.out.with_name("ran.txt.done")) == ["done"]
    assert journal_rows(r.journal, "select outcome, reason from decisions order by id desc limit 1") \
        == [("ignored", "resolved")]


def test_a_firing_database_fault_blocks_the_rollback_until_it_resolves(receiver):
    r = receiver(blocked_by=[{"remediation": "restore"}])
    fault = alert("DatabaseIntegrityCheckFailed", fingerprint="db", remediation="restore",
                  job="exporter")
    errors = alert("AppHighErrorRate", fingerprint="err", remediation="rollback", job="app")
    assert r.post(notification([fault])).status_code == 200
    assert r.post(notification([errors])).status_code == 200
    assert journal_rows(r.journal, "select fingerprint, outcome, reason, run_id from decisions "
                                   "order by id") == [("db", "ignored", "no_rule", None),
                                                      ("err", "suppressed", "blocked_by", None)]
    assert journal_rows(r.journal, "select count(*) from runs") == [(0,)]
    metrics = requests.get(r.url + "/metrics", timeout=5).text
    assert 'pitwatch_remediation_suppressions_total{reason="blocked_by"} 1.0' in metrics
    holds(lambda: not r.out.exists(), 1.0, what="no action")
    # The fault resolves; Alertmanager's re-send of the same episode may act now.
    resolved = {**fault, "status": "resolved", "endsAt": "2026-11-25T10:05:00Z"}
    assert r.post(notification([resolved])).status_code == 200
    assert r.post(notification([errors])).status_code == 200
    wait_until(lambda: len(lines(r.out)) == 1, EVENTUALLY, what="the rollback")
    assert lines(r.out) == ["err 2026-11-25T10:00:00.123456789Z"]
    assert journal_rows(r.journal, "select outcome, reason from decisions order by id desc "
                                   "limit 1") == [("act", "policy")]


def test_kill_9_during_an_action_leaves_it_interrupted_and_not_rerun(receiver, tmp_path):
    r = receiver(sleep=60)
    for i in range(3):
        assert r.post(notification([alert(remediation="rollback", fingerprint="k1"),
                                    alert("Noise", fingerprint=f"n{i}")])).status_code == 200
    pid_file = r.out.with_name("ran.txt.pid")
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), EVENTUALLY, what="the action")
    action_pid = int(pid_file.read_text())
    os.kill(r.child.pid, signal.SIGKILL)
    r.child.proc.wait(EVENTUALLY)
    os.kill(action_pid, signal.SIGKILL)  # the orphaned action: not the receiver's to keep
    r2 = receiver(sleep=60)
    after = runs(r2)
    assert [(x["status"], x["action"]) for x in after] == [("interrupted", "record")]
    holds(lambda: len(lines(r.out)) == 1, 1.0, what="one run")  # not re-run by itself
    assert journal_rows(r2.journal, "select count(*) from notifications") == [(3,)]
    assert journal_rows(r2.journal, "select count(*) from decisions") == [(6,)]
    metrics = requests.get(r2.url + "/metrics", timeout=5).text
    assert 'pitwatch_remediation_actions_total{action="record",result="interrupted"} 1.0' in metrics
    assert "marked interrupted" in (tmp_path / "remediator.log").read_text()


def test_metrics_pass_promtool_and_endpoints_answer(receiver):
    r = receiver()
    assert r.post(notification([alert(remediation="rollback")])).status_code == 200
    wait_until(lambda: runs(r) and runs(r)[0]["status"] == "success", EVENTUALLY, what="success")
    text = requests.get(r.url + "/metrics", timeout=5).text
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          text=True)
    assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), lint
    for name in ("pitwatch_remediation_action_duration_seconds_bucket",
                 "pitwatch_remediation_last_action_timestamp_seconds",
                 "pitwatch_remediation_actions_running"):
        assert name in text
    assert 'pitwatch_remediation_actions_total{action="record",result="success"} 1.0' in text
    assert requests.get(r.url + "/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(r.url + "/alerts", timeout=5).status_code == 405
    assert requests.get(r.url + "/actions", timeout=5).status_code == 401
    assert requests.get(r.url + "/actions?limit=x", timeout=5,
                        headers={"Authorization": f"Bearer {TOKEN}"}).json()["field"] == "limit"


def test_refuses_to_start_without_a_token_unless_auth_none(tmp_path):
    port = free_port()
    cfg, _ = write_config(tmp_path, port)
    (tmp_path / "token").unlink()
    proc = subprocess.run([PY, "-m", "pitwatch", "remediator", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=STARTUP)
    assert proc.returncode == 2 and "token_file" in proc.stderr
    raw = yaml.safe_load(cfg.read_text())
    del raw["remediation"]["token_file"]
    cfg.write_text(yaml.safe_dump(raw))
    proc = subprocess.run([PY, "-m", "pitwatch", "remediator", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=STARTUP)
    assert proc.returncode == 2 and "auth: none" in proc.stderr
    raw["remediation"]["auth"] = "none"
    cfg.write_text(yaml.safe_dump(raw))
    r = Receiver(cfg, port, tmp_path / "open.log")
    try:
        assert r.post(notification([alert("X")]), token=None).status_code == 200
    finally:
        r.stop()


def self_signed(tmp_path):
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    import ipaddress
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tmp_path / "cert.pem", tmp_path / "key.pem"


def test_optional_tls(tmp_path):
    from pitwatch.core.procs import Child, http_ok

    cert, key = self_signed(tmp_path)
    port = free_port()
    cfg, out = write_config(tmp_path, port, tls_cert=str(cert), tls_key=str(key))
    child = Child("remediator", [PY, "-m", "pitwatch", "remediator", "--config", cfg],
                  log=tmp_path / "tls.log")
    try:
        url = f"https://127.0.0.1:{port}"

        def up():
            assert child.poll() is None, child.tail()
            try:
                return requests.get(url + "/healthz", verify=str(cert), timeout=2).ok
            except requests.RequestException:
                return False

        wait_until(up, STARTUP, what="the TLS receiver")
        assert not http_ok(f"http://127.0.0.1:{port}/healthz")  # no plain HTTP beside it
        resp = requests.post(url + "/alerts", json=notification([alert(remediation="rollback")]),
                             headers={"Authorization": f"Bearer {TOKEN}"}, verify=str(cert), timeout=10)
        assert resp.status_code == 200
        wait_until(lambda: len(lines(out)) == 1, EVENTUALLY, what="the action")
        assert requests.post(url + "/alerts", json={}, verify=str(cert), timeout=10).status_code == 401
    finally:
        child.stop()


def test_one_receiver_per_journal(receiver, tmp_path):
    r = receiver()
    raw = yaml.safe_load(r.config.read_text())
    raw["remediation"]["listen"] = f"127.0.0.1:{free_port()}"
    other = tmp_path / "other.yml"
    other.write_text(yaml.safe_dump(raw))
    proc = subprocess.run([PY, "-m", "pitwatch", "remediator", "--config", str(other)],
                          capture_output=True, text=True, timeout=STARTUP)
    assert proc.returncode == 2 and "used by another running receiver" in proc.stderr
    assert requests.get(r.url + "/healthz", timeout=5).ok
