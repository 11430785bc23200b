"""`pitwatch demo DIR --ha`: two clustered Alertmanagers and two remediators sharing the
demo's Redis; an alert from both Alertmanagers to both remediators acts once."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import datetime, timezone

import pytest
import requests
import yaml

from pitwatch.core import config
from support.remediation import journal_rows
from support.waiting import EVENTUALLY, STACK_STARTUP, holds, wait_until

pytestmark = pytest.mark.slow  # starts the demo stack


def test_ha_demo_clusters_and_acts_once(tmp_path):
    root = tmp_path / "demo"
    out = tmp_path / "demo.out"
    # Stopped with Ctrl-C below; --seconds only ends it if the test cannot.
    runner = subprocess.Popen([sys.executable, "-m", "pitwatch", "demo", str(root), "--ha",
                               "--seconds", "1800"], stdout=open(out, "w"), stderr=subprocess.STDOUT)
    try:
        state_file = root / "run" / "stack.json"
        wait_until(lambda: state_file.exists() or runner.poll() is not None, STACK_STARTUP,
                   what="the stack to start")
        assert runner.poll() is None, out.read_text()
        urls = {c["name"]: c["url"] for c in json.loads(state_file.read_text())["components"]
                if c["running"]}
        assert {"alertmanager", "alertmanager-2", "remediator", "remediator-2"} <= set(urls)
        ams = [urls["alertmanager"], urls["alertmanager-2"]]

        def clustered() -> bool:
            status = [requests.get(u + "/api/v2/status", timeout=5).json()["cluster"] for u in ams]
            return all(s["status"] == "ready" and len(s["peers"]) == 2 for s in status)

        wait_until(clustered, EVENTUALLY, interval=1, what="the Alertmanager cluster")
        replicas = [config.load(root / f"pitwatch.remediator-{i}.yml") for i in (1, 2)]
        assert replicas[0].remediation.redis_url == replicas[1].remediation.redis_url
        assert replicas[0].remediation.journal != replicas[1].remediation.journal
        for r in replicas:
            base = f"http://{r.remediation.listen}"
            assert requests.get(base + "/healthz", timeout=5).json() == {"status": "ok"}
            assert "pitwatch_remediation_redis_up 1.0" in requests.get(base + "/metrics", timeout=5).text
        hooks = yaml.safe_load((root / "stack" / "alertmanager" / "alertmanager.yml").read_text())
        remediator = next(r for r in hooks["receivers"] if r["name"] == "remediator")
        assert [h["url"] for h in remediator["webhook_configs"]] == \
            [f"http://{r.remediation.listen}/alerts" for r in replicas]

        cfg = config.load(root / "pitwatch.yml")
        app_pid = int(cfg.platform.app_pid_file.read_text())
        alert = [{"labels": {"alertname": "AppDown", "remediation": "restart", "job": "app",
                             "instance": "demo", "severity": "critical"},
                  "startsAt": datetime.now(timezone.utc).isoformat()}]
        for u in ams:  # as Prometheus does: every alert to every Alertmanager
            requests.post(u + "/api/v2/alerts", json=alert, timeout=5).raise_for_status()

        def runs() -> list[tuple]:
            return [row for r in replicas if r.remediation.journal.exists()
                    for row in journal_rows(r.remediation.journal,
                                            "select action, status from runs")]

        wait_until(lambda: runs() and runs()[0][1] not in ("queued", "running"), EVENTUALLY,
                   interval=0.5, what="the restart to finish")
        # Re-sends by the other peer or replica would act now.
        holds(lambda: runs() == [("restart", "success")], 3, what="one successful restart")
        assert int(cfg.platform.app_pid_file.read_text()) != app_pid
        runner.send_signal(signal.SIGINT)
        assert runner.wait(STACK_STARTUP) == 0, out.read_text()
    finally:
        if runner.poll() is None:  # the runner stops its children on SIGINT
            runner.send_signal(signal.SIGINT)
            try:
                runner.wait(STACK_STARTUP)
            except subprocess.TimeoutExpired:
                runner.kill()
                runner.wait()
