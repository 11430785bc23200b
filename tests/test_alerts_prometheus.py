"""The shipped rules and timings in a real Prometheus, scraping a real instrumented Flask
app: when the app starts failing, AppHighErrorRate goes pending and then firing, with
its remediation label, within the minute the remediation budget allows."""
from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from flask import Flask
from werkzeug.serving import make_server

from pitwatch.exporters.flask import instrument
from pitwatch.core.procs import Child, free_port, wait_http
from pitwatch import render
from support import rendered
from support.waiting import EVENTUALLY, STARTUP, wait_until

pytestmark = pytest.mark.slow  # starts Prometheus

ROOT = Path(__file__).resolve().parent.parent


class App:
    """A trading-like app whose /api/trades fails with 500 while ``broken`` is set."""

    def __init__(self):
        self.broken = threading.Event()
        self.flask = Flask("faulty")
        instrument(self.flask, version="1.0.0")

        @self.flask.get("/api/trades")
        def trades():
            return ("boom", 500) if self.broken.is_set() else ("[]", 200)

        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, self.flask, threaded=True)
        self.stop = threading.Event()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        threading.Thread(target=self._traffic, daemon=True).start()

    def _traffic(self):
        while not self.stop.is_set():
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/trades", timeout=2).read()
            except OSError:
                pass
            time.sleep(0.05)

    def close(self):
        self.stop.set()
        self.server.shutdown()


def alerts(base: str) -> list[dict]:
    with urllib.request.urlopen(f"{base}/api/v1/alerts", timeout=5) as resp:
        return json.load(resp)["data"]["alerts"]


@pytest.fixture
def prometheus_and_app(tmp_path):
    app = App()
    shipped = render.prometheus(rendered.compose_config())
    config = {
        "global": shipped["global"],  # the shipped 5 s scrape and evaluation
        "rule_files": [str(ROOT / "alerts" / "rules" / "trading.yml")],
        "scrape_configs": [{"job_name": "app",
                            "static_configs": [{"targets": [f"127.0.0.1:{app.port}"]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    prom = Child("prometheus", [
        "prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
    ], log=tmp_path / "prometheus.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", timeout=STARTUP, proc=prom)
        yield f"http://127.0.0.1:{port}", app, prom
    finally:
        prom.stop()
        app.close()


def test_error_rate_alert_fires_after_a_real_fault(prometheus_and_app):
    base, app, prom = prometheus_and_app

    def scraped() -> bool:
        q = urllib.parse.quote('sum(rate(pitwatch_app_http_request_total{job="app"}[30s])) > 0')
        with urllib.request.urlopen(f"{base}/api/v1/query?query={q}", timeout=5) as resp:
            return bool(json.load(resp)["data"]["result"])

    wait_until(scraped, EVENTUALLY, interval=1, what="healthy traffic in Prometheus" + prom.tail())
    assert not [a for a in alerts(base) if a["labels"]["alertname"] == "AppHighErrorRate"]

    fault = time.monotonic()
    app.broken.set()
    seen: dict[str, float] = {}

    def firing() -> bool:
        for a in alerts(base):
            if a["labels"]["alertname"] == "AppHighErrorRate":
                seen.setdefault(a["state"], time.monotonic() - fault)
                if a["state"] == "firing":
                    seen["alert"] = a
                    return True
        return False

    # 60 s is the remediation budget, not a ceiling for a slow machine.
    wait_until(firing, 60, interval=0.5, what="AppHighErrorRate firing" + prom.tail())
    assert "pending" in seen and seen["pending"] < seen["firing"], seen
    assert seen["firing"] - seen["pending"] >= 15, "held for its `for` before firing"
    print(f"fault -> pending {seen['pending']:.1f}s, firing {seen['firing']:.1f}s")
    fired = seen["alert"]
    assert fired["labels"] == {"alertname": "AppHighErrorRate", "job": "app",
                               "severity": "critical", "remediation": "rollback"}
    assert float(fired["value"]) > 0.05
    assert fired["annotations"]["value"].endswith("% 5xx")
