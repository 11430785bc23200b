"""Deploys that watch themselves, on the real demo app (gunicorn, `reload_command`)
under steady real traffic: no failed request during a good deploy or a rollback, a bad
release rolled back by its own watch (no Prometheus, no alert), a rollback that breaches
its watch stops, every switch recorded and exposed."""
from __future__ import annotations

import re
import subprocess
import sys
import threading

import pytest
import requests

from pitwatch.core import config
from pitwatch.core.procs import Child, wait_http
from pitwatch.demo import platform, releases, traffic
from pitwatch.exporters.registry import build_concerns
from pitwatch.remediation.operations import deploys, watch
from pitwatch.remediation.operations.deploys import Record
from support.fixtures import demo_copy
from support.toy_platform import make_platform
from support.waiting import STARTUP

GOOD, SAME, BAD = "1.4.2", "1.4.3", "1.5.0"
RATE = 40.0  # requests per second, as on the running demo the issue measured


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    root = platform.init(tmp_path_factory.mktemp("seed") / "demo").parent
    releases.write(root / "releases", releases.Release(SAME, notes="1.4.2 rebuilt"))
    return root


@pytest.fixture
def demo(seeded, tmp_path):
    """The demo app of a fresh copy of the seeded folder, on a port of its own."""
    root = tmp_path / "demo"
    cfg = config.load(demo_copy(seeded, root))
    app = Child("app", [sys.executable, "-m", "pitwatch", "demo", "app", "--config", str(cfg.source)],
                log=root / "logs" / "app.log")
    try:
        wait_http(cfg.platform.app_url + "/health", STARTUP, proc=app)
        yield cfg
    finally:
        app.stop()


class Load:
    """The demo's traffic generator in a thread; what it counted when stopped."""

    def __init__(self, cfg):
        self.gen = traffic.from_config(cfg, rate=RATE)
        self.thread = threading.Thread(target=self.gen.run, daemon=True)
        self.thread.start()

    def stop(self):
        self.gen.stopping.set()
        self.thread.join(30)
        return dict(self.gen.stats)

    def failed(self, stats) -> int:
        return stats.get("unreachable", 0) + stats.get("5xx", 0)


def pitwatch(cfg, *args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "pitwatch", *args, "--config", str(cfg.source)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def serving(cfg) -> str:
    return requests.get(cfg.platform.app_url + "/health", timeout=5).json()["version"]


def exported(cfg) -> dict:
    concern = next(c for c in build_concerns(cfg) if c.name == "deploys")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in concern.collect() for s in f.samples}


def test_good_deploy_and_rollback_fail_no_request_under_traffic(demo):
    cfg = demo
    master = int(cfg.platform.app_pid_file.read_text())
    load = Load(cfg)
    try:
        deployed = pitwatch(cfg, "deploy", SAME, "--force", "--no-snapshot", "--watch", "5s")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert serving(cfg) == SAME and "watch passed" in deployed.stdout
        back = pitwatch(cfg, "rollback", "--to", GOOD, "--watch", "5s")
        assert back.returncode == 0, back.stdout + back.stderr
        assert serving(cfg) == GOOD
    finally:
        stats = load.stop()
    assert load.failed(stats) == 0, stats
    assert stats.get("2xx", 0) > 200, stats  # the traffic really ran through both switches
    # A reload: the master that holds the socket is the one that was started.
    assert int(cfg.platform.app_pid_file.read_text()) == master

    # The counting sees failures when there are some: a restart in place (no
    # reload_command) under the same traffic fails requests.
    (cfg.source).write_text(re.sub(r"\n  reload_command: .*", "", cfg.source.read_text()))
    load = Load(cfg)
    try:
        restarted = pitwatch(cfg, "deploy", SAME, "--force", "--no-snapshot", "--watch", "0")
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    finally:
        stats = load.stop()
    assert load.failed(stats) > 0, stats

    # Recorded, listed and exported.
    records = deploys.store_for(cfg).read()
    assert [(r.action, r.from_version, r.to_version, r.running, r.result, r.started_by)
            for r in records] == [("deploy", GOOD, SAME, SAME, "success", "person"),
                                  ("rollback", SAME, GOOD, GOOD, "success", "person"),
                                  ("deploy", GOOD, SAME, SAME, "success", "person")]
    assert records[0].watch.startswith(f"{SAME} passed") and records[2].watch == "not watched"
    listed = pitwatch(cfg, "releases")
    assert listed.returncode == 0, listed.stderr
    current = next(line for line in listed.stdout.splitlines() if line.startswith("*"))
    assert current.split()[1] == SAME and "deploy by person" in current
    assert re.search(rf"^\s+{re.escape(BAD)}\s+-\s+-$", listed.stdout, re.M), listed.stdout
    metrics = exported(cfg)
    assert metrics[("pitwatch_deploys_total", (("action", "deploy"), ("result", "success")))] == 2
    assert metrics[("pitwatch_deploys_total", (("action", "rollback"), ("result", "success")))] == 1
    assert metrics[("pitwatch_deploy_release_info", (("role", "current"), ("version", SAME)))] == 1
    assert metrics[("pitwatch_deploy_release_info", (("role", "previous"), ("version", GOOD)))] == 1


def test_a_bad_release_is_rolled_back_by_its_own_watch(demo):
    cfg = demo
    load = Load(cfg)
    try:
        # /health stays green on 1.5.0: the health gate passes, the watch must catch it.
        out = pitwatch(cfg, "deploy", BAD, "--force", "--no-snapshot", "--watch", "10s")
        assert serving(cfg) == GOOD
    finally:
        stats = load.stop()
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"{BAD}: healthy" in out.stdout
    assert re.search(rf"deploy of {BAD} failed: it breached its watch after \d+s \((app|smoke): "
                     r"\d+ of \d+ requests failed", out.stderr), out.stderr
    assert f"rolled back to {GOOD}" in out.stderr and f"{GOOD}: watch passed" in out.stdout
    assert stats.get("5xx", 0) > 0  # the bad release did serve, briefly
    (rec,) = deploys.store_for(cfg).read()
    assert (rec.to_version, rec.running, rec.result) == (BAD, GOOD, "rolled_back")
    assert rec.watch.startswith(f"{BAD} breached") and f"; {GOOD} passed" in rec.watch

    # A rollback onto a release that breaches its watch stops there and says so: it does
    # not go on to another release.
    load = Load(cfg)
    try:
        out = pitwatch(cfg, "rollback", "--to", BAD, "--watch", "10s",
                       env={"PITWATCH_RUN_ID": "7", "PITWATCH_RULE": "rollback_bad_release",
                            "PITWATCH_ALERTNAME": "AppHighErrorRate"})
    finally:
        load.stop()
    assert out.returncode == 1
    assert f"rolled back to {BAD}, but it breached its watch" in out.stderr
    assert "a person must decide" in out.stderr
    assert out.stdout.count("switching to") == 1 and serving(cfg) == BAD
    last = deploys.store_for(cfg).read()[-1]
    assert (last.action, last.result, last.started_by, last.run_id) == ("rollback", "failed",
                                                                        "remediator", 7)
    assert last.who == "rule rollback_bad_release, run 7, alert AppHighErrorRate"


# -- the parts on their own --------------------------------------------------------------

def test_the_verdict_follows_the_slo_spec():
    from pitwatch.core.config import Slo

    slo = Slo()
    assert watch.breach(watch.Tally(100, 15, 0), slo, "app").startswith("app: 15 of 100 requests failed")
    # Over 5 %, but the low end of its confidence interval is not: noise, not evidence.
    assert watch.breach(watch.Tally(100, 6, 0), slo, "app") is None
    assert watch.breach(watch.Tally(49, 0, 3), slo, "app") is None  # a busy host's odd slow ones
    assert watch.breach(watch.Tally(10, 10, 0), slo, "app") is None  # too few to judge
    assert watch.breach(watch.Tally(20, 20, 0), slo, "app")  # a release that fails all
    assert watch.breach(watch.Tally(100, 0, 15), slo, "app").startswith("app: 15 of 100 requests "
                                                                        "slower than 200 ms")
    stricter = Slo(rollback_error_ratio=0.01, latency_threshold="0.1s", latency_objective=0.99)
    assert watch.breach(watch.Tally(300, 12, 0), stricter, "smoke")
    assert watch.breach(watch.Tally(300, 12, 0), slo, "smoke") is None
    assert "slower than 100 ms" in watch.breach(watch.Tally(300, 0, 12), stricter, "smoke")


def test_the_lower_bound_is_wilsons():
    assert watch.lower_bound(0, 50) == 0
    assert 0.02 < watch.lower_bound(3, 49) < 0.03
    assert 0.68 < watch.lower_bound(40, 50) < 0.70
    # More requests, a narrower interval.
    assert watch.lower_bound(30, 100) < watch.lower_bound(300, 1000) < 0.30


def test_counts_are_increases_and_survive_a_counter_reset():
    def text(ok, errors, fast, timed):
        return (f'pitwatch_app_http_request_total{{method="GET",status="200"}} {ok}\n'
                f'pitwatch_app_http_request_total{{method="GET",status="500"}} {errors}\n'
                f'pitwatch_app_http_request_duration_seconds_bucket{{le="0.2",method="GET",'
                f'status="200"}} {fast}\n'
                f'pitwatch_app_http_request_duration_seconds_bucket{{le="+Inf",method="GET",'
                f'status="200"}} {timed}\n')

    m = watch.AppMetrics("unused", 0.2)
    for page in (text(100, 1, 90, 100), text(150, 11, 130, 150), text(20, 2, 10, 20)):
        m.add(page)
    t = m.tally()
    # 50 + 10 more, then a new process: its 20 + 2 counted from 0.
    assert (t.requests, t.errors, t.slow) == (50 + 10 + 20 + 2, 10 + 2, (50 - 40) + 10)


def test_who_started_it():
    assert deploys.starter({"PITWATCH_RUN_ID": "12", "PITWATCH_RULE": "r",
                            "PITWATCH_ALERTNAME": "AppHighErrorRate"}) == (
        "remediator", "rule r, run 12, alert AppHighErrorRate", 12)
    by, who, run = deploys.starter({"SUDO_USER": "alice"})
    assert (by, run) == ("person", None) and who.startswith("alice (")


def test_without_remediation_records_go_beside_the_releases_and_the_window_holds(tmp_path):
    p = make_platform(tmp_path, {"v1": True, "v2": True}, current="v1")
    try:
        p.write_config(platform={"deploy_window": "never"})
        out = p.pitwatch("deploy", "v2", "--no-snapshot")
        assert out.returncode == 3 and "deploy_window: never" in out.stderr
        assert p.current() == "v1" and not (p.releases / "deploys.jsonl").exists()
        p.write_config(platform={"deploy_window": "any"})  # whether or not Globex trades
        out = p.pitwatch("deploy", "v2", "--no-snapshot")
        assert out.returncode == 0, out.stdout + out.stderr
        out = p.pitwatch("rollback")
        assert out.returncode == 0, out.stdout + out.stderr
        cfg = config.load(p.config)
        records = deploys.JsonLines(p.releases / "deploys.jsonl").read()
        assert [(r.action, r.from_version, r.running, r.result) for r in records] == [
            ("deploy", "v1", "v2", "success"), ("rollback", "v2", "v1", "success")]
        metrics = exported(cfg)
        assert metrics[("pitwatch_deploys_total", (("action", "rollback"),
                                                   ("result", "success")))] == 1
        assert metrics[("pitwatch_deploy_release_info", (("role", "current"), ("version", "v1")))] == 1
        listed = p.pitwatch("releases")
        assert re.search(r"^\*\s+v1\s+\S+ \S+\s+rollback by person", listed.stdout, re.M), listed.stdout
        p.write_config(platform={"deploy_window": "sometimes"})
        bad = p.pitwatch("deploy", "v2")
        assert bad.returncode != 0 and "deploy_window" in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    finally:
        p.stop()


def test_a_record_that_cannot_be_read_whole_is_skipped(tmp_path):
    store = deploys.JsonLines(tmp_path / "deploys.jsonl")
    store.append(Record("deploy", "v2", from_version="v1", running="v2", result="success"))
    with open(tmp_path / "deploys.jsonl", "a") as fh:
        fh.write('{"action": "deploy", "to_ver')  # a full disk cut it short
    assert [r.running for r in store.read()] == ["v2"]
