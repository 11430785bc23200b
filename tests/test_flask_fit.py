"""pitwatch.exporters.flask on an app not written for pitwatch: the documented line as
written, an app with its own /metrics and its own trading_* metrics (also in gunicorn
multiprocess mode), instruments with contract months, the cardinality cap, the SLO
buckets and promtool's lint."""
from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import threading
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Blueprint, Flask
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pitwatch.exporters.flask import OTHER, InstrumentLabel, MetricsPathTaken, instrument


def families(text: str) -> dict:
    return {fam.name: fam for fam in text_string_to_metric_families(text)}


def value(text: str, name: str, **labels) -> float | None:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return None


def label_values(text: str, name: str, label: str) -> set[str]:
    return {s.labels[label] for fam in text_string_to_metric_families(text)
            for s in fam.samples if s.name == name}


def promtool_lint(text: str) -> str:
    lint = subprocess.run(["promtool", "check", "metrics"], input=text,
                          capture_output=True, text=True)
    return f"rc={lint.returncode} {lint.stdout}{lint.stderr}".strip()


@contextmanager
def waitress(app: Flask):
    """The app behind a real waitress server on a free port."""
    from waitress import wasyncore
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        # Closed from the server's own loop thread, which ends once nothing is left open.
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(5)
        server.task_dispatcher.shutdown()
        assert not thread.is_alive()


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read().decode()


# --- the documented line --------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTED = "metrics = instrument(app)"


def test_the_documented_line_works_as_written():
    for doc in ("README.md", "docs/metrics.md", "exporters/flask.py"):
        assert DOCUMENTED in (ROOT / doc).read_text(), doc
    app = Flask("somebodys_app")

    @app.get("/api/quote/<symbol>")
    def quote(symbol):
        return {"symbol": symbol}

    metrics = instrument(app)  # exactly as docs/metrics.md and the README write it
    client = app.test_client()
    assert client.get("/api/quote/ES").status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    assert value(text, "pitwatch_app_build_info", version="unknown") == 1
    assert value(text, "pitwatch_app_http_request_total", method="GET", status="200") == 1
    assert value(text, "pitwatch_app_http_request_duration_seconds_count", method="GET",
                 status="200", url_rule="/api/quote/<symbol>") == 1
    # Business counters exist at 0 until the app calls them.
    assert value(text, "pitwatch_app_positions_opened_total") == 0
    metrics.position_opened()
    text = client.get("/metrics").get_data(as_text=True)
    assert value(text, "pitwatch_app_positions_opened_total") == 1


def test_the_version_comes_from_config_then_package_metadata():
    configured = Flask("somebodys_app")
    configured.config["VERSION"] = "2025.09.1"
    instrument(configured)
    text = configured.test_client().get("/metrics").get_data(as_text=True)
    assert label_values(text, "pitwatch_app_build_info", "version") == {"2025.09.1"}

    # An app inside an installed distribution reports that distribution's version.
    packaged = Flask("pitwatch.someapp")
    instrument(packaged)
    text = packaged.test_client().get("/metrics").get_data(as_text=True)
    assert label_values(text, "pitwatch_app_build_info", "version") == {
        importlib.metadata.version("pitwatch")}

    explicit = Flask("somebodys_app")
    explicit.config["VERSION"] = "ignored"
    instrument(explicit, "1.4.2")
    text = explicit.test_client().get("/metrics").get_data(as_text=True)
    assert label_values(text, "pitwatch_app_build_info", "version") == {"1.4.2"}


# --- an app with its own /metrics --------------------------------------------------------

def app_with_own_metrics() -> tuple[Flask, Counter]:
    """A trading app with prometheus_client metrics of its own on its own /metrics,
    named like pitwatch's old ones but labelled differently."""
    app = Flask("own_metrics_app")
    registry = CollectorRegistry()
    trades = Counter("trading_trades_processed", "Trades by account.", ["account", "side"],
                     registry=registry)

    @app.post("/trade")
    def trade():
        trades.labels("acc1", "buy").inc()
        return {"ok": True}, 201

    @app.get("/metrics")
    def own_metrics():
        return generate_latest(registry), 200, {"Content-Type": "text/plain; version=0.0.4"}

    return app, trades


def test_an_existing_metrics_route_is_a_clear_error_not_a_hidden_one():
    app, _ = app_with_own_metrics()
    with pytest.raises(MetricsPathTaken) as err:
        instrument(app)
    message = str(err.value)
    assert "/metrics" in message and "'own_metrics'" in message
    assert "metrics_path='/metrics/pitwatch'" in message
    assert "monitoring.jobs.app.metrics_path" in message


@pytest.mark.parametrize("how", ["route", "blueprint"])
def test_a_metrics_route_added_after_instrument_is_a_clear_error(how):
    app = Flask("late_metrics_app")
    instrument(app)
    with pytest.raises(MetricsPathTaken, match="added after instrument"):
        if how == "route":
            @app.get("/metrics")
            def own_metrics():
                return "mine"
        else:
            bp = Blueprint("ops", __name__)

            @bp.get("/metrics")
            def own_metrics():
                return "mine"

            app.register_blueprint(bp)
    # Other routes still register normally.
    app.add_url_rule("/health", "health", lambda: "ok")
    assert app.test_client().get("/health").get_data(as_text=True) == "ok"


def test_instrumenting_twice_says_so():
    app = Flask("twice")
    instrument(app)
    for path in ("/metrics", "/metrics/pitwatch"):
        with pytest.raises(RuntimeError, match="already ran"):
            instrument(app, metrics_path=path)


def test_own_metrics_and_pitwatchs_both_served_on_their_own_paths():
    app, _ = app_with_own_metrics()
    metrics = instrument(app, "1.0.0", metrics_path="/metrics/pitwatch")
    with waitress(app) as url:
        req = urllib.request.Request(url + "/trade", method="POST")
        for _ in range(2):
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.status == 201
        metrics.trade_processed("MNQ SEP25")
        own, ours = get(url + "/metrics"), get(url + "/metrics/pitwatch")
    # The app's /metrics is its own, untouched; pitwatch's is complete on its path.
    assert value(own, "trading_trades_processed_total", account="acc1", side="buy") == 2
    assert not any(name.startswith("pitwatch_app_") for name in families(own))
    assert value(ours, "pitwatch_app_http_request_total", method="POST", status="201") == 2
    assert value(ours, "pitwatch_app_trades_processed_total", instrument="MNQ") == 1
    assert "trading_trades_processed" not in families(ours)
    assert promtool_lint(ours) == "rc=0"


@pytest.mark.parametrize("apps_first", [True, False])
def test_beside_the_apps_own_prometheus_flask_exporter_both_count(apps_first):
    from prometheus_flask_exporter import PrometheusMetrics

    app = Flask("exporter_app")
    app.add_url_rule("/ping", "ping", lambda: "pong")

    def own():
        return PrometheusMetrics(app, registry=CollectorRegistry())  # its /metrics, flask_*

    if apps_first:
        own()
        instrument(app, "1.0.0", metrics_path="/metrics/pitwatch")
    else:
        instrument(app, "1.0.0", metrics_path="/metrics/pitwatch")
        own()
    client = app.test_client()
    for _ in range(3):
        client.get("/ping")
    own_text = client.get("/metrics").get_data(as_text=True)
    ours = client.get("/metrics/pitwatch").get_data(as_text=True)
    assert value(own_text, "flask_http_request_total", method="GET", status="200") == 3
    assert value(ours, "pitwatch_app_http_request_total", method="GET", status="200") == 3
    assert value(ours, "pitwatch_app_http_request_duration_seconds_count", method="GET",
                 status="200", url_rule="/ping") == 3


# In gunicorn multiprocess mode every metric of the process lands in one folder and a
# scrape merges families by name: the collision that matters. A fresh interpreter,
# because prometheus_client picks its multiprocess value store at import.
MULTIPROCESS_APP = """
import json
from flask import Flask
from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess
from prometheus_flask_exporter import PrometheusMetrics
from pitwatch.exporters.flask import instrument

app = Flask("own_metrics_app")
# The app's own metrics: pitwatch's former names with other labels, and
# prometheus-flask-exporter's defaults (flask_*) on the default registry.
trades = Counter("trading_trades_processed", "Trades by account.", ["account", "side"])
charts = Counter("trading_chart_requests", "Charts by symbol.", ["symbol"])
PrometheusMetrics(app, path=None, group_by="endpoint")

@app.post("/trade")
def trade():
    trades.labels("acc1", "buy").inc()
    charts.labels("MNQ SEP25").inc()
    metrics.trade_processed("MNQ SEP25")
    metrics.chart_request("5m")
    return {"ok": True}, 201

@app.get("/metrics")
def own_metrics():
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), 200, {"Content-Type": "text/plain; version=0.0.4"}

metrics = instrument(app, "1.0.0", metrics_path="/metrics/pitwatch")
client = app.test_client()
for _ in range(3):
    assert client.post("/trade").status_code == 201
print(json.dumps({"own": client.get("/metrics").get_data(as_text=True),
                  "ours": client.get("/metrics/pitwatch").get_data(as_text=True)}))
"""


def test_an_apps_own_trading_metrics_do_not_collide_in_multiprocess_mode(tmp_path):
    mp_dir = tmp_path / "mp"
    mp_dir.mkdir()
    script = tmp_path / "app.py"
    script.write_text(MULTIPROCESS_APP)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mp_dir)}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert list(mp_dir.glob("counter_*.db"))  # really multiprocess
    for text in (out["own"], out["ours"]):  # both views read the same folder
        fams = families(text)
        # Each family keeps one meaning: the app's labels in its own, ours in ours.
        assert {k for s in fams["trading_trades_processed"].samples
                for k in s.labels} == {"account", "side"}
        assert {k for s in fams["trading_chart_requests"].samples for k in s.labels} == {"symbol"}
        assert {k for s in fams["pitwatch_app_trades_processed"].samples
                for k in s.labels} == {"instrument"}
        assert value(text, "pitwatch_app_trades_processed_total", instrument="MNQ") == 3
        assert value(text, "pitwatch_app_chart_requests_total", timeframe="5m") == 3
        assert value(text, "trading_trades_processed_total", account="acc1", side="buy") == 3
        # Each request counted once per exporter, not twice in one merged family.
        assert value(text, "pitwatch_app_http_request_total", method="POST", status="201") == 3
        assert value(text, "flask_http_request_total", method="POST", status="201") == 3
    assert promtool_lint(out["ours"]) == "rc=0"


# --- instruments: contract months and the cap ---------------------------------------------

@pytest.mark.parametrize("raw, root", [
    ("MNQ SEP25", "MNQ"), ("MNQ DEC25", "MNQ"), ("MES MAR 26", "MES"), ("ES-DEC2025", "ES"),
    ("ESZ5", "ES"), ("NQH26", "NQ"), ("MNQ U25", "MNQ"), ("6EZ5", "6E"), ("SR3H6", "SR3"),
    ("M2KZ5", "M2K"), (" GC ", "GC"),
    # Not over-stripped: roots ending in a month-code letter, a symbol that is nothing
    # but letter+digit, index-like names, strikes.
    ("ZN", "ZN"), ("6M", "6M"), ("ZB", "ZB"), ("J7", "J7"), ("E7", "E7"), ("SR3", "SR3"),
    ("HK50", "HK50"), ("CH20", "CH20"), ("EUSTX50", "EUSTX50"), ("MAR25", "MAR25"),
    ("ES 4500C", "ES 4500C"),
    # Not instruments at all.
    ("", OTHER), ("X" * 40, OTHER),
])
def test_contract_months_are_stripped_without_over_stripping(raw, root):
    assert InstrumentLabel().normalise(raw) == root


def test_contract_month_pattern_is_configurable():
    assert InstrumentLabel(contract_month=r"_\d{6}$").normalise("ES_202509") == "ES"
    assert InstrumentLabel(contract_month=r"_\d{6}$").normalise("MNQ SEP25") == "MNQ SEP25"
    assert InstrumentLabel(contract_month=None).normalise("MNQ SEP25") == "MNQ SEP25"


def test_contract_months_become_one_series_and_the_cap_holds():
    app = Flask("capped")
    metrics = instrument(app, "1.0.0", instruments=("ES", "NQ"), max_instruments=4)
    for symbol in ("MNQ SEP25", "MNQ DEC25", "ESZ5", "CL", "GC", "SI", "ZN", "MNQ H26"):
        metrics.trade_processed(symbol)
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert label_values(text, "pitwatch_app_trades_processed_total", "instrument") == {
        "ES", "NQ", "MNQ", "CL", OTHER}  # ES, NQ seeded; MNQ, CL fill the cap of 4
    assert value(text, "pitwatch_app_trades_processed_total", instrument="MNQ") == 3
    assert value(text, "pitwatch_app_trades_processed_total", instrument="ES") == 1
    assert value(text, "pitwatch_app_trades_processed_total", instrument="NQ") == 0
    assert value(text, "pitwatch_app_trades_processed_total", instrument=OTHER) == 3


def test_the_cap_holds_under_concurrent_requests():
    app = Flask("busy")
    metrics = instrument(app, "1.0.0", max_instruments=10)

    @app.post("/trade/<symbol>")
    def trade(symbol):
        metrics.trade_processed(symbol)
        return "", 201

    with waitress(app) as url:
        def post(i):
            req = urllib.request.Request(f"{url}/trade/T{i:03d}", method="POST")
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status

        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(post, range(200))) == {201}
        text = get(url + "/metrics")
    kept = label_values(text, "pitwatch_app_trades_processed_total", "instrument")
    assert len(kept - {OTHER}) == 10
    total = sum(value(text, "pitwatch_app_trades_processed_total", instrument=i) for i in kept)
    assert total == 200 and value(text, "pitwatch_app_trades_processed_total",
                                  instrument=OTHER) == 190


# --- SLO buckets and the lint --------------------------------------------------------

def test_latency_buckets_hold_the_slo_thresholds():
    app = Flask("slo")
    app.add_url_rule("/ping", "ping", lambda: "pong")
    instrument(app)
    client = app.test_client()
    client.get("/ping")
    text = client.get("/metrics").get_data(as_text=True)
    bounds = label_values(text, "pitwatch_app_http_request_duration_seconds_bucket", "le")
    assert {"0.05", "0.2"} <= bounds  # p95 < 200 ms is read at the 0.2 boundary


def test_every_name_passes_promtool():
    app = Flask("lint")
    app.add_url_rule("/ping", "ping", lambda: "pong")
    metrics = instrument(app)
    client = app.test_client()
    client.get("/ping")
    for symbol in ("MNQ SEP25", "6EZ5", "weird symbol \"quoted\"\n", "ES"):
        metrics.trade_processed(symbol)
    metrics.chart_request("15m")
    metrics.login_failure("bad_password")
    metrics.db_error("locked")
    with metrics.db_query():
        pass
    text = client.get("/metrics").get_data(as_text=True)
    assert all(name.startswith("pitwatch_app_") for name in families(text)), families(text)
    assert promtool_lint(text) == "rc=0"
