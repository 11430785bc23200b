"""``pitwatch check`` on fixture folders: exit 0 healthy, 1 degraded, 2 failing."""
from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time

import pytest

from pitwatch import check
from pitwatch.core import backups, config
from support.fixtures import SECURITY_HEADERS, make_cert, make_db, overwrite_pages, write_config
from support.servers import HTTPServer, start_redis


def run_check(cfg_path, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pitwatch", "check", "--config", cfg_path, *extra],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def app():
    with HTTPServer(SECURITY_HEADERS) as server:
        yield server.url


def platform(tmp_path, app, snapshot_age: float = 60, cert_days: float = 90, **sections):
    db = make_db(tmp_path / "trading.db")
    backups.snapshot(db, tmp_path / "snaps", now=time.time() - snapshot_age)
    cert, _, _ = make_cert(tmp_path, "site", days=cert_days)
    (tmp_path / "auth.log").write_text("sshd: Failed password for root\n")
    base = dict(platform={"app_url": app},
                backups={"snapshots_dir": str(tmp_path / "snaps")},
                security={"firewall": "off", "certificates": [str(cert)],
                          "auth_logs": [str(tmp_path / "auth.log")]})
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return write_config(tmp_path, db, **base), db


def test_healthy_platform_exits_0(tmp_path, app):
    cfg, _ = platform(tmp_path, app)
    proc = run_check(cfg)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1].startswith("healthy:") and "0 warn, 0 fail" in lines[-1]
    assert any(l.startswith("OK") and "restore test" in l for l in lines)
    assert any("quick_check: ok" in l for l in lines)
    # A p99 from the probe histogram's buckets, not a mean.
    assert any(l.startswith("OK") and "probe query: p99 " in l and "(histogram of 1 query)" in l
               for l in lines), proc.stdout
    assert "\033[" not in proc.stdout  # not a TTY: no colour codes


def test_degraded_platform_exits_1(tmp_path, app):
    cfg, _ = platform(tmp_path, app, snapshot_age=50 * 60, cert_days=10)
    proc = run_check(cfg, "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["status"] == "degraded" and report["exit_code"] == 1
    warned = {(c["concern"], c["check"]) for c in report["checks"] if c["status"] == "warn"}
    assert warned == {("backup", "snapshot age"), ("security", f"tls {tmp_path / 'site.pem'}")}


def test_failing_platform_exits_2(tmp_path, app):
    cfg, db = platform(tmp_path, app, snapshot_age=2 * 3600, cert_days=3)
    overwrite_pages(db, db.stat().st_size // 4096 // 2, 4)
    proc = run_check(cfg, "--json")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    failed = {(c["concern"], c["check"]) for c in report["checks"] if c["status"] == "fail"}
    assert {("backup", "snapshot age"), ("database", "quick_check"), ("database", "integrity_check"),
            ("trading", "collector"), ("security", f"tls {tmp_path / 'site.pem'}")} <= failed


def test_the_configs_slo_section_sets_the_thresholds(tmp_path, app):
    """A 40-minute-old snapshot is within the stated 1 h RPO, and over a 30 min one."""
    cfg, _ = platform(tmp_path, app, snapshot_age=40 * 60)
    by_check = {(f.concern, f.check): f for f in check.run(config.load(cfg))}
    assert by_check[("backup", "snapshot age")].status == check.OK
    (tmp_path / "strict").mkdir()
    cfg, _ = platform(tmp_path / "strict", app, snapshot_age=40 * 60, slo={"rpo": "30m"})
    by_check = {(f.concern, f.check): f for f in check.run(config.load(cfg))}
    assert by_check[("backup", "snapshot age")].status == check.FAIL


def test_redis_down_and_missing_headers_in_process(tmp_path):
    redis, url = start_redis(tmp_path)
    redis.stop()
    with HTTPServer({}) as bare:
        cfg_path, _ = platform(tmp_path, bare.url, platform={"redis_url": url})
        findings = check.run(config.load(cfg_path))
    by_check = {(f.concern, f.check): f for f in findings}
    assert by_check[("redis", "up")].status == check.FAIL
    assert by_check[("redis", "collector")].status == check.FAIL
    assert by_check[("security", "http headers")].status == check.WARN
    assert "content-security-policy" in by_check[("security", "http headers")].detail
    assert check.verdict(findings) == check.FAIL


def test_colour_only_on_a_tty(tmp_path, app):
    cfg, _ = platform(tmp_path, app)
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pitwatch", "check", "--config", cfg],
                            stdout=follower, stderr=subprocess.DEVNULL)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the pty closes when the child exits
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(60) == 0
    os.close(leader)
    assert b"\033[32mOK" in out
