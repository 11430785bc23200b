"""Long-term storage: the demo stack's Prometheus remote-writes to a real VictoriaMetrics
(Debian package `victoria-metrics`) with the `monitoring.remote_write` documented in
compose/README.md, and the Overview dashboard's queries return the same series from
both."""
from __future__ import annotations

import math
from pathlib import Path
import re
import time

import pytest
import yaml

from pitwatch.dashboards.queries import QueryError, Window, queries, query_range
from pitwatch.core import config as config_mod
from pitwatch.demo import platform
from pitwatch.demo.stack import Stack, components
from pitwatch.core.procs import Child, free_port, wait_http
from support.waiting import STARTUP, wait_until

pytestmark = pytest.mark.slow  # starts the demo stack's Prometheus

README = Path(__file__).resolve().parent.parent / "compose" / "README.md"


def documented_remote_write() -> list[dict]:
    """The ``monitoring.remote_write`` of the README's long-term storage section, as written."""
    for block in re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S):
        if "remote_write:" in block:
            doc = yaml.safe_load(re.sub(r"^#.*\n", "", block, flags=re.M))
            return doc["monitoring"]["remote_write"]
    raise AssertionError("compose/README.md has no remote_write example")


def series(result: list) -> dict[str, int]:
    """Label set -> number of points with a value (Prometheus sends NaN, VictoriaMetrics
    leaves such points out; Grafana draws neither)."""
    out = {}
    for s in result:
        points = [v for _, v in s["values"] if not math.isnan(float(v))]
        if points:
            out[yaml.safe_dump(s["metric"], sort_keys=True)] = len(points)
    return out


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("longterm")
    vm_port = free_port()
    vm = Child("victoria-metrics", [
        "victoria-metrics", f"-storageDataPath={root / 'vm'}", f"-httpListenAddr=127.0.0.1:{vm_port}",
        "-retentionPeriod=1d", "-loggerLevel=WARN",
        # Points become visible at once, as in Prometheus (default: after 30 s).
        "-search.latencyOffset=0s", "-search.disableCache"], log=root / "vm.log")
    vm_url = f"http://127.0.0.1:{vm_port}"
    stack = None
    try:
        wait_http(vm_url + "/health", STARTUP, proc=vm)
        config_path = platform.init(root / "demo", echo=lambda _: None)
        cfg = config_mod.load(config_path)
        writes = documented_remote_write()
        for w in writes:
            w["url"] = w["url"].replace("victoriametrics:8428", f"127.0.0.1:{vm_port}")
            # Test only: ship samples every second instead of every five.
            w.setdefault("queue_config", {})["batch_send_deadline"] = "1s"
        # The documented key of pitwatch.yml, rendered by the stack like every config.
        cfg = cfg.model_copy(update={"monitoring": cfg.monitoring.model_copy(
            update={"remote_write": writes})})
        specs = components(cfg, config_path, rate=20)
        prom_yml = root / "demo" / "stack" / "prometheus" / "prometheus.yml"
        assert yaml.safe_load(prom_yml.read_text())["remote_write"] == writes
        stack = Stack(root / "demo", cfg, specs, echo=lambda _: None)
        stack.start()
        prom = next(s.url for s in specs if s.name == "prometheus")
        yield prom, vm_url, stack
    finally:
        if stack is not None:
            stack.stop()
        vm.stop()


def test_overview_queries_return_the_same_series_from_victoriametrics(stores):
    prom, vm, _ = stores
    overview = [q for q in queries() if q.board == "overview"]
    assert overview

    def compare() -> list[str]:
        # A window ending a few seconds ago: what Prometheus has, VictoriaMetrics has too
        # once the remote-write queue has shipped it.
        window = Window.last(60, scrape_interval=5, now=time.time() - 5)
        diffs = []
        for q in overview:
            try:
                from_prom = series(query_range(prom, q.expr, window))
                from_vm = series(query_range(vm, q.expr, window))
            except QueryError as exc:
                diffs.append(f"{q.panel}: {exc}")
                continue
            if from_prom.keys() != from_vm.keys():
                diffs.append(f"{q.panel}: prometheus {sorted(from_prom)} vm {sorted(from_vm)}")
            elif not from_prom:
                diffs.append(f"{q.panel}: no data yet")
        return diffs

    # Every panel has data once a few scrapes and a restore test are in; until then the
    # two stores must still agree.
    diffs: list[str] = []

    def agree() -> bool:
        diffs[:] = compare()
        return not diffs

    try:
        wait_until(agree, 180, interval=3, what="both stores to answer alike")
    except TimeoutError:
        pass
    assert not diffs, "\n".join(diffs)
    # The samples really travelled: VictoriaMetrics counts what it was sent.
    import requests
    text = requests.get(vm + "/metrics", timeout=5).text
    rows = [float(line.split()[-1]) for line in text.splitlines()
            if line.startswith('vm_rows_inserted_total{type="promremotewrite"}')]
    assert rows and rows[0] > 1000
