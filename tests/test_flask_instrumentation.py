"""pitwatch.exporters.flask.instrument: metric names, bounded labels, one registry per app,
and gunicorn multiprocess mode with real workers."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from pitwatch.exporters.flask import instrument
from pitwatch.core import config
from pitwatch.demo import platform
from pitwatch.core.procs import Child, free_port, wait_http
from support.fixtures import without_redis
from support.waiting import STARTUP

DOC_METRICS = ("pitwatch_app_http_request_duration_seconds", "pitwatch_app_http_request_total",
               "pitwatch_app_http_request_exceptions_total", "pitwatch_app_trades_processed_total",
               "pitwatch_app_positions_opened_total", "pitwatch_app_chart_requests_total",
               "pitwatch_app_login_failures_total", "pitwatch_app_db_errors_total",
               "pitwatch_app_db_query_duration_seconds", "pitwatch_app_build_info")


def samples(text: str) -> dict[tuple, float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def small_app(version: str):
    app = Flask(f"t{version}")

    @app.get("/item/<int:item_id>")
    def item(item_id):
        if item_id == 13:
            raise RuntimeError("unlucky")
        return {"id": item_id}

    return app, instrument(app, version)


def test_two_apps_in_one_process_keep_separate_metrics():
    app_a, m_a = small_app("1.0.0")
    app_b, m_b = small_app("2.0.0")  # a second instrument() must not raise duplicates
    a, b = app_a.test_client(), app_b.test_client()
    for i in range(3):
        assert a.get(f"/item/{i}").status_code == 200
    assert b.get("/item/7").status_code == 200
    m_a.trade_processed("ES")
    m_a.trade_processed("ESZ5")  # a contract month: counted as its root
    m_a.chart_request("13m")
    m_a.login_failure("because")
    m_a.db_error("disk on fire")
    m_a.position_opened()
    with m_a.db_query():
        pass
    ta, tb = a.get("/metrics").get_data(as_text=True), b.get("/metrics").get_data(as_text=True)
    names = {fam.name for fam in text_string_to_metric_families(ta)}
    for name in DOC_METRICS:
        assert name.removesuffix("_total") in names, name
    # Grouped by the rule, not by the path with its id.
    assert value(ta, "pitwatch_app_http_request_duration_seconds_count",
                 method="GET", status="200", url_rule="/item/<int:item_id>") == 3
    assert value(tb, "pitwatch_app_http_request_duration_seconds_count",
                 method="GET", status="200", url_rule="/item/<int:item_id>") == 1
    assert value(ta, "pitwatch_app_build_info", version="1.0.0") == 1
    assert value(ta, "pitwatch_app_build_info", version="2.0.0") is None
    assert value(ta, "pitwatch_app_trades_processed_total", instrument="ES") == 2
    assert value(ta, "pitwatch_app_trades_processed_total", instrument="other") == 0
    assert value(ta, "pitwatch_app_chart_requests_total", timeframe="other") == 1
    assert value(ta, "pitwatch_app_login_failures_total", reason="bad_password") == 0
    assert value(ta, "pitwatch_app_db_errors_total", kind="other") == 1
    assert value(ta, "pitwatch_app_db_query_duration_seconds_count") == 1
    assert value(tb, "pitwatch_app_trades_processed_total", instrument="ES") is None  # none leaked
    # Label values are bounded: nothing arbitrary ever became a label.
    label_values = {v for (_, labels) in samples(ta) for _, v in labels}
    assert not label_values & {"ESZ5", "13m", "because", "disk on fire"}


def test_exceptions_are_counted():
    app, _ = small_app("1.0.0")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()
    assert client.get("/item/13").status_code == 500
    text = client.get("/metrics").get_data(as_text=True)
    assert value(text, "pitwatch_app_http_request_exceptions_total", method="GET", status="500") == 1
    assert value(text, "pitwatch_app_http_request_total", method="GET", status="500") == 1


def test_exposition_passes_promtool():
    app, m = small_app("1.0.0")
    client = app.test_client()
    client.get("/item/1")
    m.trade_processed("NQ")
    lint = subprocess.run(["promtool", "check", "metrics"],
                          input=client.get("/metrics").get_data(as_text=True),
                          capture_output=True, text=True)
    assert lint.returncode == 0 and not (lint.stdout + lint.stderr).strip(), lint.stdout + lint.stderr


@pytest.fixture(scope="module")
def demo_config(tmp_path_factory):
    return without_redis(platform.init(tmp_path_factory.mktemp("mp") / "demo"))


def test_gunicorn_two_workers_one_metrics_view(demo_config, tmp_path):
    """Two real gunicorn workers write to one multiprocess folder; a scrape sums both."""
    mp_dir = tmp_path / "metrics"
    mp_dir.mkdir()
    (mp_dir / "counter_99999.db").write_bytes(b"")  # a stale file of a previous run
    port = free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    conf = Path(__file__).resolve().parent.parent / "pitwatch" / "demo" / "gunicorn_conf.py"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(mp_dir), "PITWATCH_CONFIG": str(demo_config)}
    argv = [str(gunicorn), "-c", str(conf), "-w", "2", "-b", f"127.0.0.1:{port}",
            "pitwatch.demo.app:from_env()"]
    url = f"http://127.0.0.1:{port}"
    trade = {"symbol": "GC", "side": "buy", "quantity": 1, "price": 2650.0, "account": "mp"}
    with Child("gunicorn", argv, log=tmp_path / "gunicorn.log", env=env,
               cwd=demo_config.parent) as server:
        wait_http(url + "/health", STARTUP, proc=server)
        assert not (mp_dir / "counter_99999.db").exists()

        def post(_):
            # A fresh connection per request lets either worker accept it.
            return requests.post(url + "/api/trades", json=trade, timeout=10,
                                 headers={"Connection": "close"}).status_code

        sent = 0
        with ThreadPoolExecutor(8) as pool:
            while sent < 400:
                assert set(pool.map(post, range(40))) == {201}
                sent += 40
                pids = {p.stem.rsplit("_", 1)[1] for p in mp_dir.glob("counter_*.db")}
                if len(pids) >= 2:
                    break
        assert len(pids) == 2, f"only {pids} served requests"
        cfg = config.load(demo_config)
        seen = Counter()
        for _ in range(6):  # whichever worker answers, the numbers are the sum of both
            text = requests.get(url + "/metrics", headers={"Connection": "close"}, timeout=10).text
            seen[(value(text, "pitwatch_app_trades_processed_total", instrument="GC"),
                  value(text, "pitwatch_app_http_request_total", method="POST", status="201"),
                  value(text, "pitwatch_app_build_info", version="1.4.2"))] += 1
        assert list(seen) == [(float(sent), float(sent), 1.0)], seen
        assert cfg.platform.app_url  # the config the workers read is valid
        lint = subprocess.run(["promtool", "check", "metrics"], input=text,
                              capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    assert os.listdir(mp_dir)  # the workers really wrote there
