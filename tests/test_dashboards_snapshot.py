"""Snapshots from a real Prometheus scraping a real exposition of catalogue metrics.

The target is a prometheus_client HTTP server in this process exposing a handful of
the catalogue's metrics with live traffic; Prometheus 2.42 scrapes it every second and
evaluates the shipped rules (alerts/rules, the SLO recording rules among them).
Panels over those metrics must have data, panels over metrics it does not expose must
be reported as "No data", a panel of nothing but NaN as such, and the PNGs must be
real images.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from pitwatch.dashboards import queries
from pitwatch.core.procs import Child, free_port, wait_http
from support.waiting import EVENTUALLY, STARTUP, wait_until

pytestmark = pytest.mark.slow  # starts Prometheus

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "alerts" / "rules"
EXPOSED_ON_OVERVIEW = ["Availability", "API p95 latency", "5xx ratio", "Trades per minute",
                       "Newest backup age", "TLS time left", "App memory", "Firing alerts",
                       "Last remediation", "Current incidents", "API p95 latency against the SLO"]
NOT_EXPOSED_ON_OVERVIEW = ["Last trade age", "Restore test duration"]
# A histogram without observations (the probe: the DB query SLI's fallback, as the app
# runs no query here): its quantile is NaN at every step.
NAN_ONLY_ON_OVERVIEW = ["DB query p99"]


class Traffic:
    """Catalogue metrics with values that move, served over HTTP."""

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("pitwatch_app_http_request", "Requests.", ["method", "status"],
                                registry=r)
        self.latency = Histogram("pitwatch_app_http_request_duration_seconds", "Latency.",
                                 ["method", "status", "url_rule"], registry=r)
        self.trades = Counter("pitwatch_app_trades_processed", "Trades.", ["instrument"], registry=r)
        Gauge("pitwatch_app_process_resident_memory_bytes", "RSS.", registry=r).set(300e6)
        Gauge("pitwatch_backup_snapshot_last_success_timestamp_seconds", "Snapshot.",
              registry=r).set_to_current_time()
        tls = Gauge("pitwatch_security_tls_cert_not_after_timestamp_seconds", "Cert.",
                    ["source"], registry=r)
        tls.labels("/etc/ssl/a.pem").set(time.time() + 30 * 86400)
        tls.labels("https://b.example").set(time.time() + 10 * 86400)
        Histogram("pitwatch_sqlite_probe_query_duration_seconds", "Probe.", registry=r)
        Gauge("pitwatch_app_build_info", "Release.", ["version"], registry=r).labels("1.2.3").set(1)
        self.remediated_at = time.time() - 30
        Gauge("pitwatch_remediation_last_action_timestamp_seconds", "Last action.", ["action"],
              registry=r).labels("restart").set(self.remediated_at)
        free = Gauge("pitwatch_volume_free_bytes", "Free.", ["volume"], registry=r)
        size = Gauge("pitwatch_volume_size_bytes", "Size.", ["volume"], registry=r)
        for volume, share in (("database", 0.5), ("backups", 0.08)):
            size.labels(volume).set(10e9)
            free.labels(volume).set(share * 10e9)
        self.stop = threading.Event()
        self.count = 0

    def run(self):
        while not self.stop.wait(0.02):
            self.count += 1
            status = "500" if self.count % 10 == 0 else "200"  # 10 % errors
            self.requests.labels("GET", status).inc()
            self.latency.labels("GET", status, "/trades").observe(0.03)
            self.trades.labels("ES" if self.count % 2 else "NQ").inc()


def _query(url: str, expr: str) -> list:
    with urllib.request.urlopen(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}),
                                timeout=5) as resp:
        return json.load(resp)["data"]["result"]


@pytest.fixture(scope="module")
def traffic():
    return Traffic()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory, traffic):
    work = tmp_path_factory.mktemp("prometheus")
    target_port = free_port()
    server, _ = start_http_server(target_port, addr="127.0.0.1", registry=traffic.registry)
    feeder = threading.Thread(target=traffic.run, daemon=True)
    feeder.start()
    config = work / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{RULES}/*.yml']\n"
        "scrape_configs:\n"
        f"  - job_name: app\n    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = Child("prometheus", ["prometheus", f"--config.file={config}",
                                f"--storage.tsdb.path={work / 'data'}",
                                f"--web.listen-address=127.0.0.1:{port}"],
                 log=work / "prometheus.log")
    try:
        wait_http(f"{url}/-/ready", timeout=STARTUP, proc=proc)
        # Enough scrapes for a rate over $__rate_interval (4 s at a 1 s scrape).
        wait_until(lambda: bool(_query(url, 'count_over_time(up{job="app"}[1m]) >= 6')),
                   timeout=EVENTUALLY, interval=0.5, what="six scrapes of the target")
        wait_until(lambda: bool(_query(url, "slo:sli_error:ratio_rate1h")),
                   timeout=EVENTUALLY, interval=0.5, what="the SLO recording rules")
        yield url
    finally:
        proc.stop()
        traffic.stop.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def models():
    from pitwatch.dashboards.build import models as build_models

    return build_models()


@pytest.fixture(scope="module")
def snapshot_run(prometheus, tmp_path_factory):
    out = tmp_path_factory.mktemp("snapshots")
    proc = subprocess.run(
        [sys.executable, "-m", "pitwatch", "dashboards", "snapshot", "--prometheus", prometheus,
         "--out", str(out), "--range", "1m", "--scrape-interval", "1s"],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc.stdout


def test_one_valid_png_per_board(snapshot_run):
    import matplotlib.image

    from pitwatch.dashboards.build import BOARDS

    out, _ = snapshot_run
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(BOARDS)
    for path in out.glob("*.png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 30_000, path
        height, width, _ = matplotlib.image.imread(path).shape
        assert width >= 1200 and height >= 300, (path, width, height)


def _no_data(stdout: str, dashboard: str, what: str = "no data") -> set[str]:
    prefix = f"  {what}: {dashboard} / "
    return {line[len(prefix):].split(": ", 1)[0] for line in stdout.splitlines()
            if line.startswith(prefix)}


def test_snapshot_reports_exactly_the_panels_without_data(snapshot_run):
    _, stdout = snapshot_run
    empty = _no_data(stdout, "pitwatch / Overview")
    assert not empty & set(EXPOSED_ON_OVERVIEW), empty
    assert set(NOT_EXPOSED_ON_OVERVIEW) <= empty
    nan_only = _no_data(stdout, "pitwatch / Overview", "NaN only")
    assert nan_only == set(NAN_ONLY_ON_OVERVIEW), stdout
    assert not nan_only & empty
    # Nothing about the remediator or Litestream is exposed: their boards say so.
    assert "Decisions by outcome" not in _no_data(stdout, "pitwatch / Remediation")  # or_zero
    assert "Action duration" in _no_data(stdout, "pitwatch / Remediation")
    assert "Litestream database and WAL" in _no_data(stdout, "pitwatch / Backups")


def test_panels_without_data_agrees(prometheus, snapshot_run):
    _, stdout = snapshot_run
    found = queries.panels_without_data(prometheus, range_seconds=60, scrape_interval=1)
    overview = {panel for dashboard, panel, _ in found if dashboard == "pitwatch / Overview"}
    assert overview == _no_data(stdout, "pitwatch / Overview")
    assert all(expr for _, _, expr in found)


def test_queries_compute_what_the_target_serves(prometheus):
    """The PromQL means what the panels say: 10 % of requests fail, one volume at 8 %."""
    from pitwatch.dashboards import promql

    window = queries.Window.last(60, scrape_interval=1)
    (ratio,) = queries.query_range(prometheus, promql.ERROR_RATIO, window)
    assert 0.05 < float(ratio["values"][-1][1]) < 0.15
    (tls,) = queries.query_range(prometheus, promql.TLS_TIME_LEFT, window)
    assert 9.9 * 86400 < float(tls["values"][-1][1]) < 10 * 86400
    volumes = queries.query_range(prometheus, promql.VOLUME_FREE_RATIO, window)
    assert {v["metric"]["volume"]: float(v["values"][-1][1]) for v in volumes} == \
        {"database": 0.5, "backups": 0.08}
    # Availability is the requests' (the SLI), not the target's `up`, which is 1 throughout.
    (availability,) = queries.query_range(prometheus, promql.AVAILABILITY, window)
    assert 0.85 < float(availability["values"][-1][1]) < 0.95


def test_panel_queries_follow_the_job_and_instance_filters(prometheus, models):
    """The board's own target, narrowed to the scraped job, has data; another job has none."""
    window = queries.Window.last(60, scrape_interval=1)
    memory = next(t["expr"] for p in models["overview"]["panels"] if p["title"] == "App memory"
                  for t in p["targets"])
    assert queries.query_range(prometheus, memory, window)
    assert queries.query_range(prometheus, memory.replace("$job", "app"), window)
    assert not queries.query_range(prometheus, memory.replace("$job", "exporter"), window)


def test_annotations_mark_releases_and_remediation_runs(prometheus, traffic):
    window = queries.Window.last(60, scrape_interval=1)
    found = {q.panel: queries.query_range(prometheus, q.expr, window)
             for q in queries.annotation_queries() if q.board == "overview"}
    assert set(found) == {"Critical alerts", "Remediation runs", "Releases"}
    # Served for the first time: a release, marked at the steps just after it appeared.
    (release,) = found["Releases"]
    assert release["metric"] == {"version": "1.2.3"}
    # The mark's time is the value, the run's own second, in milliseconds.
    (run,) = found["Remediation runs"]
    assert run["metric"] == {"action": "restart"}
    assert {float(v) for _, v in run["values"]} == {traffic.remediated_at * 1000}


def test_prometheus_errors_are_clear(prometheus):
    window = queries.Window.last(60, scrape_interval=1)
    with pytest.raises(queries.QueryError, match="parse"):
        queries.query_range(prometheus, "sum(rate(x[$__rate_interval])", window)
    with pytest.raises(queries.QueryError, match="127.0.0.1"):
        queries.query_range(f"http://127.0.0.1:{free_port()}", "up", window, timeout=2)
