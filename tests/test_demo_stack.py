"""`pitwatch demo DIR --seconds N`: everything starts, answers, and nothing outlives it."""
from __future__ import annotations

import json
import subprocess
import sys

import psutil
import pytest
import requests

from pitwatch.core import config
from support.waiting import EVENTUALLY, STACK_STARTUP, wait_until


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def group_members(pgid: int) -> list[int]:
    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and psutil.os.getpgid(p.pid) == pgid:
                out.append(p.pid)
        except (psutil.Error, ProcessLookupError):
            pass
    return out


@pytest.mark.slow  # starts the demo stack
def test_demo_runs_answers_survives_a_restart_and_leaves_nothing(tmp_path):
    root = tmp_path / "demo"
    log = open(tmp_path / "demo.out", "w")
    # --seconds counts from when every component is up; what the test does meanwhile
    # (a restart among it) must fit well inside, also on a loaded machine.
    runner = subprocess.Popen([sys.executable, "-m", "pitwatch", "demo", str(root),
                               "--seconds", "30", "--rate", "20"],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        state_file = root / "run" / "stack.json"
        wait_until(lambda: state_file.exists() or runner.poll() is not None, STACK_STARTUP,
                   what="the stack to start")
        assert runner.poll() is None, (tmp_path / "demo.out").read_text()
        state = json.loads(state_file.read_text())["components"]
        pids = {c["name"]: c["pid"] for c in state if c["running"]}
        assert {"app", "traffic"} <= set(pids)
        assert all(alive(pid) for pid in pids.values())
        cfg = config.load(root / "pitwatch.yml")

        health = requests.get(cfg.platform.app_url + "/health", timeout=5)
        assert health.status_code == 200 and health.json()["version"] == "1.4.2"
        # One failed login of our own, through the local proxy's header: the traffic's
        # failures are random (about one request in two hundred) and may not come.
        bad = requests.post(cfg.platform.app_url + "/login", timeout=5,
                            headers={"X-Forwarded-For": "198.51.100.7"},
                            json={"username": "mallory", "password": "hunter2"})
        assert bad.status_code == 401, bad.text
        # The remediation's restart replaces the app process mid-run.
        restart = subprocess.run(cfg.platform.restart_command, capture_output=True, text=True,
                                 timeout=STACK_STARTUP)
        assert restart.returncode == 0, restart.stdout + restart.stderr
        new_app = int(cfg.platform.app_pid_file.read_text())
        assert new_app != pids["app"] and alive(new_app)
        assert requests.get(cfg.platform.app_url + "/health", timeout=5).status_code == 200
        assert runner.wait(STACK_STARTUP) == 0
    finally:
        if runner.poll() is None:
            runner.terminate()
            runner.wait(STACK_STARTUP)
        log.close()
    out = (tmp_path / "demo.out").read_text()
    assert "COMPONENT" in out and cfg.platform.app_url in out and "all components stopped" in out
    for pid in [*pids.values(), new_app]:
        wait_until(lambda: not alive(pid), EVENTUALLY, what=f"pid {pid} to be gone")
        assert not group_members(pid), f"process group {pid} left behind"
    assert not cfg.platform.app_pid_file.exists()
    # The traffic generator met the app (and rode out the restart).
    traffic_log = (root / "logs" / "traffic.log").read_text()
    stats = traffic_log.rsplit("traffic stopped:", 1)[1]
    assert "'2xx'" in stats, traffic_log
    auth_lines = cfg.security.auth_logs[0].read_text().splitlines()
    assert auth_lines and all("Failed password" in l or "authentication failure" in l
                              for l in auth_lines)
    # The client address came through the trusted local proxy header.
    assert not any("127.0.0.1" in line for line in auth_lines), auth_lines


def test_traffic_keeps_going_while_the_app_is_down():
    from pitwatch.demo.traffic import Traffic
    from pitwatch.core.procs import free_port

    gen = Traffic(f"http://127.0.0.1:{free_port()}", rate=20)
    stats = gen.run(seconds=1.5)  # nothing listens there: no exception, only counts
    assert stats["unreachable"] >= 3 and not stats["2xx"]
