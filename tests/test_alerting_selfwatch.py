"""Alerting that watches itself, end to end: a real Prometheus evaluating the rendered
rules and scraping itself and Alertmanager, a real Alertmanager with the rendered
routes, a local HTTP server standing in for the external dead man's switch
(``heartbeat.url``), and a mail relay that refuses every connection.

- The Watchdog reaches the heartbeat URL once per ``heartbeat.interval``.
- Mail that cannot be delivered shows in Alertmanager's own metrics, which Prometheus
  scrapes, and AlertmanagerNotificationsFailing goes pending on them.
- Once that alert fires for `email`, the heartbeat stops (the switch raises the alarm by
  its own path) and starts again when it resolves.
"""
from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pitwatch import render
from pitwatch.core import config
from pitwatch.core.procs import Child, free_port, wait_http
from support.waiting import STARTUP, holds, wait_until

INTERVAL = 4  # heartbeat.interval, seconds: short, so that several pings come quickly
pytestmark = pytest.mark.slow  # starts a Prometheus and an Alertmanager


class Switch(BaseHTTPRequestHandler):
    """The dead man's switch: records when each ping arrived and what it carried."""

    pings: list[tuple[float, dict]] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Switch.pings.append((time.monotonic(), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def query(prom: str, expr: str) -> list[dict]:
    return get_json(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))["data"]["result"]


def post_alert(am: str, labels: dict, ends: bool = False) -> None:
    now = datetime.now(timezone.utc).isoformat()
    body = [{"labels": labels, "startsAt": now, **({"endsAt": now} if ends else {})}]
    req = urllib.request.Request(f"{am}/api/v2/alerts", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def watchdog_state(am: str) -> str | None:
    return next((a["status"]["state"] for a in get_json(f"{am}/api/v2/alerts")
                 if a["labels"]["alertname"] == "Watchdog"), None)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("selfwatch")
    prom_port, am_port, switch_port = free_port(), free_port(), free_port()
    cfg = config.parse({
        "platform": {"database": str(root / "trading.db"),
                     "app_url": f"http://127.0.0.1:{free_port()}"},  # nothing listens
        "exporter": {"listen": f"127.0.0.1:{free_port()}"},
        "mail": {"smarthost": f"127.0.0.1:{free_port()}", "to": ["oncall@example.test"]},
        "heartbeat": {"url": f"http://127.0.0.1:{switch_port}/ping/selfwatch",
                      "interval": f"{INTERVAL}s"},
        "monitoring": {"alertmanagers": [f"127.0.0.1:{am_port}"],
                       "prometheus_url": f"http://127.0.0.1:{prom_port}"},
    })
    render.write(cfg, root / "out")
    Switch.pings = []
    switch = ThreadingHTTPServer(("127.0.0.1", switch_port), Switch)
    threading.Thread(target=switch.serve_forever, daemon=True).start()
    am = Child("alertmanager", [
        "prometheus-alertmanager", f"--config.file={root / 'out' / 'alertmanager' / 'alertmanager.yml'}",
        f"--storage.path={root / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address="], log=root / "alertmanager.log")
    prom = Child("prometheus", [
        "prometheus", f"--config.file={root / 'out' / 'prometheus' / 'prometheus.yml'}",
        f"--storage.tsdb.path={root / 'prom-data'}", f"--web.listen-address=127.0.0.1:{prom_port}",
    ], log=root / "prometheus.log")
    try:
        wait_http(f"http://127.0.0.1:{am_port}/-/ready", timeout=STARTUP, proc=am)
        wait_http(f"http://127.0.0.1:{prom_port}/-/ready", timeout=STARTUP, proc=prom)
        yield {"prom": f"http://127.0.0.1:{prom_port}", "am": f"http://127.0.0.1:{am_port}",
               "am_proc": am, "prom_proc": prom, "am_instance": f"127.0.0.1:{am_port}"}
    finally:
        prom.stop()
        am.stop()
        switch.shutdown()
        switch.server_close()


def test_the_watchdog_pings_the_heartbeat_url_once_per_interval(stack):
    # Prometheus may drop the first send (no Alertmanager discovered yet at its first
    # evaluation) and re-sends a firing alert once a minute: the first ping can take that.
    wait_until(lambda: len(Switch.pings) >= 5, STARTUP + 5 * INTERVAL, interval=0.2,
               what="five heartbeats" + stack["am_proc"].tail())
    _, first = Switch.pings[0]
    assert first["receiver"] == "watchdog" and first["status"] == "firing"
    assert [a["labels"]["alertname"] for a in first["alerts"]] == ["Watchdog"]
    # One ping per group_interval: with repeat_interval equal to it, Alertmanager skips
    # every other flush and the gaps are two intervals. The median is immune to one
    # late ping on a loaded machine.
    times = [t for t, _ in Switch.pings]
    gap = statistics.median(b - a for a, b in zip(times, times[1:]))
    assert INTERVAL * 0.75 <= gap < INTERVAL * 1.5, f"heartbeat every {gap:.1f}s"


def test_prometheus_scrapes_itself_and_alertmanager(stack):
    def up(job: str) -> bool:
        return [r["value"][1] for r in query(stack["prom"], f'up{{job="{job}"}}')] == ["1"]

    wait_until(lambda: up("prometheus") and up("alertmanager"), 60, interval=0.5,
               what="both jobs up" + stack["prom_proc"].tail())
    # The inputs of alerts/rules/alerting.yml, under the job names the rules select.
    for expr in ('alertmanager_notifications_total{job="alertmanager", integration="email"}',
                 'alertmanager_config_last_reload_successful{job="alertmanager"}',
                 'prometheus_config_last_reload_successful{job="prometheus"}',
                 'prometheus_notifications_sent_total{job="prometheus"}'):
        assert query(stack["prom"], expr), expr


def test_failing_mail_raises_its_alert_and_stops_the_heartbeat(stack):
    prom, am = stack["prom"], stack["am"]
    # The app is down: AppDown (critical) is mailed to a relay that refuses. Alertmanager
    # counts the failure once it gave up retrying (a group_interval, 1 min), Prometheus
    # scrapes it and the rule goes pending.
    pending = 'ALERTS{alertname="AlertmanagerNotificationsFailing", integration="email"}'
    wait_until(lambda: query(prom, pending), 300, interval=1,
               what="AlertmanagerNotificationsFailing pending" + stack["am_proc"].tail())
    failed = query(prom, 'alertmanager_notifications_failed_total{integration="email"}')
    assert float(failed[0]["value"][1]) >= 1

    # Its `for` is 5 minutes; the firing alert as Prometheus would send it.
    alert = {"alertname": "AlertmanagerNotificationsFailing", "severity": "critical",
             "integration": "email", "job": "alertmanager", "instance": stack["am_instance"]}
    post_alert(am, alert)
    wait_until(lambda: watchdog_state(am) == "suppressed", 30, interval=0.2,
               what="the Watchdog inhibited")
    # A ping already on its way may land; after that, silence for three intervals.
    time.sleep(1)
    count = len(Switch.pings)
    holds(lambda: len(Switch.pings) == count, 3 * INTERVAL, what="no heartbeat")

    post_alert(am, alert, ends=True)
    wait_until(lambda: len(Switch.pings) > count, 60, interval=0.2,
               what="the heartbeat again once mail works" + stack["am_proc"].tail())
