"""The demo trading app: endpoints, validation, headers, failures as metrics."""
from __future__ import annotations

import re
import sqlite3
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from pitwatch.core import config
from pitwatch.demo import app as demo_app
from pitwatch.demo import platform, releases, store
from pitwatch.core.procs import Child, wait_http
from support.fixtures import demo_copy
from support.servers import start_redis
from support.waiting import EVENTUALLY, STARTUP, wait_until

HEADERS = ("Strict-Transport-Security", "Content-Security-Policy", "X-Content-Type-Options",
           "X-Frame-Options", "Referrer-Policy")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """One seeded folder, copied per test: seeding hashes passwords and is not free."""
    return platform.init(tmp_path_factory.mktemp("seed") / "demo").parent


@pytest.fixture
def cfg(seeded, tmp_path):
    return config.load(demo_copy(seeded, tmp_path / "demo"))


def sample(text: str, name: str, **labels) -> float | None:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def test_trade_positions_chart_and_metrics(cfg):
    client = demo_app.create_app(cfg).test_client()
    before = client.get("/api/positions").get_json()["count"]
    trade = {"symbol": "ES", "side": "buy", "quantity": 3, "price": 6021.25, "account": "zoe"}
    r = client.post("/api/trades", json=trade)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["position_opened"] is True and r.get_json()["trade_id"] > 0
    # Same side adds, the other side flips: one more position opened, zoe ends short 2.
    assert client.post("/api/trades", json={**trade, "quantity": 1}).get_json()["position_opened"] is False
    assert client.post("/api/trades", json={**trade, "side": "sell", "quantity": 6}).get_json()["position_opened"]
    pos = client.get("/api/positions?account=zoe").get_json()["positions"]
    assert [(p["symbol"], p["side"], p["quantity"]) for p in pos] == [("ES", "short", 2)]
    assert client.get("/api/positions").get_json()["count"] == before + 1

    chart = client.get("/api/chart/ES?timeframe=1m").get_json()
    last = chart["bars"][-1]
    assert last["close"] == 6021.25 and last["volume"] >= 10
    assert last["low"] <= last["open"] <= last["high"] and last["t"] % 60 == 0
    daily = client.get("/api/chart/CL?timeframe=1d").get_json()["bars"]
    assert len(daily) >= 3 and all(40 < b["close"] < 120 for b in daily)
    assert client.get("/api/chart/XX?timeframe=1m").status_code == 404

    metrics = client.get("/metrics").get_data(as_text=True)
    assert sample(metrics, "pitwatch_app_trades_processed_total", instrument="ES") == 3
    assert sample(metrics, "pitwatch_app_positions_opened_total") == 2
    assert sample(metrics, "pitwatch_app_chart_requests_total", timeframe="1m") == 2
    assert sample(metrics, "pitwatch_app_build_info", version="1.4.2") == 1
    assert sample(metrics, "pitwatch_app_http_request_duration_seconds_count",
                  url_rule="/api/chart/<symbol>", method="GET", status="200") == 2
    assert sample(metrics, "pitwatch_app_db_query_duration_seconds_count") >= 6


@pytest.mark.parametrize("body, field", [
    ({"side": "buy", "quantity": 1, "price": 6000}, "symbol"),
    ({"symbol": "ES", "side": "hold", "quantity": 1, "price": 6000}, "side"),
    ({"symbol": "ES", "side": "buy", "quantity": 0, "price": 6000}, "quantity"),
    ({"symbol": "ES", "side": "buy", "quantity": "2", "price": 6000}, "quantity"),
    ({"symbol": "ES", "side": "buy", "quantity": 1, "price": -5}, "price"),
    ({"symbol": "ES", "side": "buy", "quantity": 1, "price": 6000.1}, "price"),  # off tick
    ({"symbol": "ES", "side": "buy", "quantity": 1, "price": 6000, "account": "a b"}, "account"),
    ([1, 2], "body"),
])
def test_bad_trade_is_a_400_naming_the_field_and_stores_nothing(cfg, body, field):
    client = demo_app.create_app(cfg).test_client()
    count = sqlite3.connect(cfg.platform.database).execute("select count(*) from trades").fetchone()
    r = client.post("/api/trades", json=body)
    assert r.status_code == 400
    assert r.get_json()["field"] == field and field in r.get_json()["error"]
    assert sqlite3.connect(cfg.platform.database).execute("select count(*) from trades").fetchone() == count
    bad_tf = client.get("/api/chart/ES?timeframe=7m")
    assert bad_tf.status_code == 400 and bad_tf.get_json()["field"] == "timeframe"
    metrics = client.get("/metrics").get_data(as_text=True)
    assert sample(metrics, "pitwatch_app_chart_requests_total", timeframe="other") == 1


def test_security_headers_on_every_response(cfg):
    client = demo_app.create_app(cfg).test_client()
    for resp in (client.get("/health"), client.get("/api/positions"), client.get("/nope"),
                 client.post("/api/trades", json={}), client.get("/metrics")):
        for h in HEADERS:
            assert resp.headers.get(h), (resp.request.path, h)
    assert "max-age=" in client.get("/").headers["Strict-Transport-Security"]


def test_failed_logins_go_to_the_auth_log_and_the_counter(cfg):
    client = demo_app.create_app(cfg).test_client()
    password = (cfg.source.parent / "secrets" / "demo-user.password").read_text().strip()
    assert client.post("/login", json={"username": "demo", "password": password}).status_code == 200
    attempts = [("alice", "wrong", "bad_password"), ("nosuchuser", "x", "unknown_user"),
                ("mallory", "x", "locked"), ("bob\nFAKE LINE", "y", "unknown_user")]
    for user, pw, _ in attempts:
        r = client.post("/login", json={"username": user, "password": pw},
                        environ_base={"REMOTE_ADDR": "203.0.113.9"})
        assert r.status_code == 401 and r.get_json()["error"] == "invalid username or password"
    assert client.post("/login", json={"username": "alice"}).get_json()["field"] == "password"

    lines = cfg.security.auth_logs[0].read_text().splitlines()
    assert len(lines) == len(attempts)  # the injected newline did not forge a line
    assert "Failed password for alice from 203.0.113.9" in lines[0]
    assert "Failed password for invalid user nosuchuser from 203.0.113.9" in lines[1]
    assert "authentication failure" in lines[2] and "user=mallory" in lines[2]
    assert all(re.search(cfg.security.auth_failure_pattern, line) for line in lines)
    metrics = client.get("/metrics").get_data(as_text=True)
    assert sample(metrics, "pitwatch_app_login_failures_total", reason="bad_password") == 1
    assert sample(metrics, "pitwatch_app_login_failures_total", reason="unknown_user") == 2
    assert sample(metrics, "pitwatch_app_login_failures_total", reason="locked") == 1


def _corrupt(path, header: bool):
    conn = sqlite3.connect(path)
    conn.execute("pragma wal_checkpoint(truncate)")
    conn.close()
    with open(path, "r+b") as fh:
        if header:
            fh.write(b"this is no database at all" * 4)
        else:  # wreck every page but the first (schema stays readable)
            fh.seek(4096)
            size = fh.seek(0, 2) - 4096
            fh.seek(4096)
            fh.write(b"\xde\xad\xbe\xef" * (size // 4))


@pytest.mark.parametrize("header", [False, True], ids=["malformed", "not-a-database"])
def test_damaged_database_is_a_503_and_a_metric_not_a_crash(cfg, header):
    client = demo_app.create_app(cfg).test_client()
    assert client.get("/health").status_code == 200
    _corrupt(cfg.platform.database, header)
    health = client.get("/health")
    assert health.status_code == 503
    assert health.get_json()["status"] == "fail" and "database" in health.get_json()["reason"]
    assert health.get_json()["version"] == "1.4.2"
    r = client.post("/api/trades", json={"symbol": "ES", "side": "buy", "quantity": 1, "price": 6000})
    assert r.status_code == 503 and "corruption" in r.get_json()["error"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert sample(metrics, "pitwatch_app_db_errors_total", kind="corruption") >= 2
    assert sample(metrics, "pitwatch_app_http_request_total", method="POST", status="503") == 1


def test_missing_database_is_not_silently_recreated(cfg):
    client = demo_app.create_app(cfg).test_client()
    cfg.platform.database.rename(cfg.platform.database.with_suffix(".moved"))
    assert client.get("/health").status_code == 503
    assert not cfg.platform.database.exists()


def test_error_kind_of_real_sqlite_errors(tmp_path):
    db = tmp_path / "x.db"
    holder = store.create(db)
    holder.execute("begin immediate")
    other = store.connect(db, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as locked:  # a second writer
        other.execute("begin immediate")
    assert store.error_kind(locked.value) == "locked"
    with pytest.raises(sqlite3.OperationalError) as other_err:
        holder.execute("select nope from trades")
    assert store.error_kind(other_err.value) == "other"


def test_health_checks_redis_when_configured(cfg, tmp_path):
    redis, url = start_redis(tmp_path)
    try:
        cfg = cfg.model_copy(update={"platform": cfg.platform.model_copy(update={"redis_url": url})})
        client = demo_app.create_app(cfg).test_client()
        ok = client.get("/health")
        assert ok.status_code == 200 and ok.get_json()["checks"]["redis"] == "ok"
    finally:
        redis.stop()
    down = client.get("/health")
    assert down.status_code == 503 and "redis" in down.get_json()["reason"]


def _timed(url: str, n: int) -> tuple[list[int], list[float]]:
    def one(_):
        t = time.monotonic()
        status = requests.get(url, timeout=10).status_code
        return status, time.monotonic() - t
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(n)))
    return [s for s, _ in results], [d for _, d in results]


def test_real_server_restart_switches_to_the_bad_release_and_back(cfg):
    """waitress in its own process; `restart-app` swaps releases as a deploy would."""
    argv = [sys.executable, "-m", "pitwatch", "demo", "app", "--config", str(cfg.source)]
    url = cfg.platform.app_url
    pids = []
    try:
        with Child("app", argv, log=cfg.source.parent / "logs" / "app.log") as app:
            wait_http(url + "/health", STARTUP, proc=app)
            assert int(cfg.platform.app_pid_file.read_text()) == app.pid
            status, good_lat = _timed(url + "/api/positions", 40)
            assert status.count(200) == 40
            # promtool is the judge of the exposition format.
            text = requests.get(url + "/metrics", timeout=5).text
            lint = subprocess.run(["promtool", "check", "metrics"], input=text,
                                  capture_output=True, text=True)
            assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(), lint.stdout + lint.stderr

            releases.point_current(cfg.platform.releases_dir, platform.BAD_RELEASE.version)
            assert requests.get(url + "/health", timeout=5).json()["version"] == "1.4.2"  # until restart
            restart = subprocess.run(cfg.platform.restart_command, capture_output=True, text=True,
                                     timeout=STARTUP)
            assert restart.returncode == 0, restart.stdout + restart.stderr
            assert app.poll() == 0  # the old process stopped cleanly on TERM
        new_pid = int(cfg.platform.app_pid_file.read_text())
        pids.append(new_pid)
        assert new_pid != app.pid
        assert requests.get(url + "/health", timeout=5).json()["version"] == "1.5.0"
        status, bad_lat = _timed(url + "/api/positions", 60)
        errors = status.count(500)
        assert 6 <= errors <= 36, status  # ~30% of 60; bounds hold with p > 0.999
        assert statistics.median(bad_lat) > statistics.median(good_lat) + 0.2
        metrics = requests.get(url + "/metrics", timeout=5).text
        assert sample(metrics, "pitwatch_app_http_request_total", method="GET", status="500") == errors
        assert sample(metrics, "pitwatch_app_build_info", version="1.5.0") == 1

        releases.point_current(cfg.platform.releases_dir, platform.GOOD_RELEASE.version)
        restart = subprocess.run(cfg.platform.restart_command, capture_output=True, text=True,
                                 timeout=STARTUP)
        assert restart.returncode == 0 and "healthy" in restart.stdout
        pids.append(int(cfg.platform.app_pid_file.read_text()))
        assert requests.get(url + "/health", timeout=5).json()["version"] == "1.4.2"
    finally:
        stop = subprocess.run([sys.executable, "-m", "pitwatch", "demo", "stop-app", "--config",
                               str(cfg.source)], capture_output=True, text=True, timeout=STARTUP)
    assert "stopped" in stop.stdout
    for pid in pids:
        wait_until(lambda: not _alive(pid), EVENTUALLY, what=f"pid {pid} gone")
    assert not cfg.platform.app_pid_file.exists()


def _alive(pid: int) -> bool:
    import psutil
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
