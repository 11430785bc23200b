"""The real ``pitwatch exporter`` process: promtool-clean /metrics, concurrent scrapes,
bad sources as metrics (never a 500), a clean stop on SIGTERM."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pitwatch.core import backups
from pitwatch.core.procs import Child, free_port, wait_http
from support.fixtures import SECURITY_HEADERS, make_cert, make_db, write_config
from support.servers import HTTPServer, start_redis
from support.waiting import EVENTUALLY, STARTUP, wait_until


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def parse(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def collector_success(metrics: dict) -> dict[str, float]:
    return {dict(labels)["collector"]: v for (name, labels), v in metrics.items()
            if name == "pitwatch_collector_success"}


def start_exporter(tmp_path, config) -> tuple[Child, str]:
    port = free_port()
    child = Child("exporter", [sys.executable, "-m", "pitwatch", "exporter", "--config", config,
                               "--listen", f"127.0.0.1:{port}"], log=tmp_path / "exporter.log")
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/healthz", timeout=STARTUP, proc=child)
    return child, base


@pytest.fixture
def healthy(tmp_path):
    """A healthy platform: database, fresh snapshot, Redis, app with headers, TLS, logs."""
    db = make_db(tmp_path / "trading.db")
    backups.snapshot(db, tmp_path / "snaps")
    (tmp_path / "auth.log").write_text("sshd: Failed password for root\n")
    cert, key, _ = make_cert(tmp_path, "site", days=90)
    redis, redis_url = start_redis(tmp_path)
    app = Child("app", [sys.executable, "-c", "import time; time.sleep(600)"])
    (tmp_path / "app.pid").write_text(str(app.pid))
    web = HTTPServer(SECURITY_HEADERS)
    tls = HTTPServer(SECURITY_HEADERS, cert=(cert, key))
    config = write_config(
        tmp_path, db,
        platform={"app_url": web.url, "app_pid_file": str(tmp_path / "app.pid"), "redis_url": redis_url},
        backups={"snapshots_dir": str(tmp_path / "snaps")},
        security={"auth_logs": [str(tmp_path / "auth.log")], "certificates": [str(cert)],
                  "tls_endpoints": [tls.url], "firewall": "auto"})
    yield config
    for thing in (web, tls, app, redis):
        (thing.close if hasattr(thing, "close") else thing.stop)()


def test_exporter_process_healthy_promtool_clean_and_stops_on_sigterm(tmp_path, healthy):
    child, base = start_exporter(tmp_path, healthy)
    try:
        def settled() -> bool:  # every background check has reported once
            m = parse(get(base + "/metrics")[1])
            names = {name for name, _ in m}
            return {"pitwatch_market_open", "pitwatch_backup_restore_test_ok",
                    "pitwatch_security_http_header_present", "pitwatch_security_firewall_known",
                    "pitwatch_smoke_success", "pitwatch_activity_expected_max_trade_age_seconds"} <= names \
                and len([k for k in m if k[0] == "pitwatch_sqlite_integrity_check_ok"]) == 2

        wait_until(settled, EVENTUALLY, interval=0.5, what=f"background checks{child.tail()}")
        status, body = get(base + "/metrics")
        assert status == 200
        lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                              text=True)
        assert (lint.returncode, lint.stdout + lint.stderr) == (0, "")
        metrics = parse(body)
        assert collector_success(metrics) == dict.fromkeys(
            ["market", "trading", "database", "backup", "security", "smoke", "activity", "system",
             "redis"], 1.0)
        # The default smoke URL, the app's /health, answered.
        assert [v for (n, _), v in metrics.items() if n == "pitwatch_smoke_success"] == [1.0]
        assert metrics[("pitwatch_backup_restore_test_ok", ())] == 1
        assert metrics[("pitwatch_redis_up", ())] == 1
        assert metrics[("pitwatch_security_login_failures_total", (("source", "auth.log"),))] == 1

        with ThreadPoolExecutor(8) as pool:  # concurrent scrapes share the collectors safely
            results = list(pool.map(lambda _: get(base + "/metrics"), range(40)))
        assert {status for status, _ in results} == {200}
        assert all(set(collector_success(parse(b)).values()) == {1.0} for _, b in results)
        assert get(base + "/healthz") == (200, "ok\n")
        assert get(base + "/nope")[0] == 404

        os.kill(child.pid, signal.SIGTERM)
        assert child.proc.wait(EVENTUALLY) == 0
    finally:
        child.stop()


def test_exporter_process_reports_broken_sources_without_500(tmp_path):
    redis, redis_url = start_redis(tmp_path)
    redis.stop()  # a Redis that was there and is gone
    config = write_config(
        tmp_path, tmp_path / "missing.db",
        platform={"app_url": f"http://127.0.0.1:{free_port()}", "redis_url": redis_url,
                  "app_pid_file": str(tmp_path / "gone.pid")},
        backups={"snapshots_dir": str(tmp_path / "no-snaps")},
        security={"auth_logs": [str(tmp_path / "no.log")]})
    child, base = start_exporter(tmp_path, config)
    try:
        status, body = get(base + "/metrics")
        assert status == 200
        ok = collector_success(parse(body))
        assert {k: ok[k] for k in ("trading", "database", "backup", "security", "system", "redis")} == \
            dict.fromkeys(["trading", "database", "backup", "security", "system", "redis"], 0.0)
        assert parse(body)[("pitwatch_redis_up", ())] == 0
        lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                              text=True)
        assert lint.returncode == 0, lint.stdout + lint.stderr
        time.sleep(1)  # the same failure a little later is still the same state
        get(base + "/metrics")
        # Logged once per state change: a second scrape adds no new warning for the same failure.
        log = (tmp_path / "exporter.log").read_text()
        assert log.count("collector redis failing") == 1
    finally:
        child.stop()
    assert not (tmp_path / "missing.db").exists()


def test_exporter_rejects_a_bad_listen_address(tmp_path):
    config = write_config(tmp_path, make_db(tmp_path / "t.db", trades=1))
    proc = subprocess.run([sys.executable, "-m", "pitwatch", "exporter", "--config", config,
                           "--listen", "nowhere"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--listen" in proc.stderr and "HOST:PORT" in proc.stderr
