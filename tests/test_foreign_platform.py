"""pitwatch adopted by a platform it was not written for, the README's way: a trading
journal (``support/journal_app.py``: its own metric names, naive text timestamps, a daily
import, no login, no pitwatch instrumentation, security headers from a proxy) described
in a pitwatch.yml, ``pitwatch render``, a real Prometheus and Alertmanager on the
rendered files, ``pitwatch exporter``, and a mail sink.

One stack for the module. The healthy window is recorded once (module fixture) before
any test that breaks something, so the tests hold in any order:
- healthy for five minutes: nothing fires but Watchdog and info, nobody is mailed;
- every board panel has data, or ``pitwatch.blind`` says why it cannot;
- the app's API failing with 500s pages through the smoke alert alone.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pitwatch import mailsink
from pitwatch.core import config
from pitwatch.core.procs import Child, free_port, wait_http
from pitwatch.dashboards.queries import Window, queries, query_range, run
from support.foreign_app import Journal
from support.servers import start_redis
from support.waiting import STARTUP, wait_until

pytestmark = pytest.mark.slow  # Prometheus, Alertmanager, five minutes of watching

HEALTHY_SECONDS = 300.0
SMOKE_NAMES = {"trades", "chart"}
RUNBOOK = "https://wiki.journal.test/pitwatch/runbook"
GRAFANA = "https://grafana.journal.test"
# A blind panel's reason names the pitwatch.yml key (or trading query) that would feed it.
NAMES_A_KEY = re.compile(r"[a-z_]+\.[a-z_]+|a trading query named \w+|a \w+ section")
# A panel's "0 rather than No data" fallback: not a measurement.
FALLBACK = re.compile(r"\s+or\s+on\s*\(\s*\)\s*vector\(\s*-?[\d.]+\s*\)\s*$")


def pitwatch_yml(root: Path, journal: Journal, redis_url: str, smtp: int,
                 ports: dict[str, int]) -> Path:
    """The journal's pitwatch.yml, as its SRE would write it from the example."""
    proxy, prom, am = journal.proxy_url, ports["prometheus"], ports["alertmanager"]
    path = root / "pitwatch.yml"
    path.write_text(f"""\
platform:
  app_url: {journal.app_url}
  health_path: /health
  database: journal/journal.db
  instrumented: false           # its own /metrics; pitwatch.exporters.flask is not in it
  redis_url: {redis_url}

trading_queries:
  # executed_at is naive UTC text ('2026-12-02 09:30:00'): strftime('%s') makes it unix
  # seconds, and max() over the column alone is answered from its index.
  - name: last_trade_timestamp_seconds
    help: Execution time of the newest imported trade.
    sql: select strftime('%s', max(executed_at)) from trades
  - name: trades_last_day
    help: Trades executed in the last 24 hours, per instrument.
    sql: >-
      select instrument, count(*) from trades
      where executed_at >= strftime('%Y-%m-%d %H:%M:%S', 'now', '-1 day')
      group by instrument

trading:
  activity: daily               # the broker statement is imported once a day

smoke:
  urls:                         # through the proxy, as users reach the journal
    - url: {proxy}/api/trades?limit=20
      name: trades
    - url: {proxy}/api/chart/MNQ%20SEP25
      name: chart

security:
  header_probe_url: {proxy}/    # the proxy adds the headers, the app does not
  firewall: auto

backups:
  snapshots_dir: backups

exporter:
  listen: 127.0.0.1:{ports["exporter"]}

mail:
  smarthost: 127.0.0.1:{smtp}
  sender: pitwatch@journal.test
  to: [desk@journal.test]

monitoring:
  jobs:
    app:
      name: trading-journal
      metrics_path: /metrics    # the journal's own metrics, no pitwatch instrumentation
  alertmanagers: ["127.0.0.1:{am}"]
  prometheus_url: http://127.0.0.1:{prom}

links:
  runbook: {RUNBOOK}
  grafana: {GRAFANA}
  prometheus: http://127.0.0.1:{prom}
  alertmanager: http://127.0.0.1:{am}
""")
    return path


def pitwatch(*argv: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "pitwatch", *argv], capture_output=True,
                          text=True, timeout=STARTUP)
    assert proc.returncode == 0, f"pitwatch {' '.join(argv)}: {proc.stdout}{proc.stderr}"
    return proc.stdout + proc.stderr


def api(base: str, path: str, **params) -> dict:
    url = f"{base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def query(prometheus: str, expr: str) -> list[dict]:
    return api(prometheus, "/api/v1/query", query=expr)["data"]["result"]


def alerts(prometheus: str) -> list[dict]:
    return api(prometheus, "/api/v1/alerts")["data"]["alerts"]


def routine(alert: dict) -> bool:
    return alert["labels"]["alertname"] == "Watchdog" or alert["labels"].get("severity") == "info"


def describe(alert: dict) -> str:
    labels = {k: v for k, v in alert["labels"].items() if k != "alertname"}
    return (f"{alert['labels']['alertname']} {labels} {alert['state']}: "
            f"{alert['annotations'].get('description', '')}")


@dataclass
class Stack:
    root: Path
    config: Path
    rendered: Path
    journal: Journal
    prometheus: str
    alertmanager: str
    mail: Path
    config_check: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("foreign")
    with ExitStack() as cleanup:
        redis, redis_url = start_redis(root)
        cleanup.callback(redis.stop)
        journal = Journal(root / "journal", redis_url)
        cleanup.callback(journal.stop)
        smtp = free_port()
        sink = mailsink.serve(root / "mail", "127.0.0.1", smtp)
        cleanup.callback(sink.stop)
        ports = {name: free_port() for name in ("exporter", "prometheus", "alertmanager")}
        cfg = pitwatch_yml(root, journal, redis_url, smtp, ports)

        # The adoption path of the README, step by step.
        checked = pitwatch("config", "check", str(cfg))
        pitwatch("backup", "snapshot", "--config", str(cfg))  # the first scheduled one
        out = root / "rendered"
        pitwatch("render", str(out), "--config", str(cfg))

        def start(name: str, argv: list, ready: str) -> None:
            child = Child(name, argv, log=root / f"{name}.log", cwd=root)
            cleanup.callback(child.stop)
            wait_http(ready, timeout=STARTUP, proc=child)

        start("exporter", [sys.executable, "-m", "pitwatch", "exporter", "--config", cfg],
              f"http://127.0.0.1:{ports['exporter']}/metrics")
        am = f"127.0.0.1:{ports['alertmanager']}"
        start("alertmanager", [
            "prometheus-alertmanager", f"--config.file={out / 'alertmanager' / 'alertmanager.yml'}",
            f"--storage.path={root / 'am-data'}", f"--web.listen-address={am}",
            f"--web.external-url=http://{am}", "--cluster.listen-address="], f"http://{am}/-/ready")
        prom_yml = out / "prometheus" / "prometheus.yml"
        prom = f"http://127.0.0.1:{ports['prometheus']}"
        start("prometheus", [
            "prometheus", f"--config.file={prom_yml}", f"--storage.tsdb.path={root / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}", f"--web.external-url={prom}"],
            f"{prom}/-/ready")

        jobs = len(yaml.safe_load(prom_yml.read_text())["scrape_configs"])

        def up() -> bool:
            targets = api(prom, "/api/v1/targets")["data"]["activeTargets"]
            if len(targets) < jobs or any(t["health"] != "up" for t in targets):
                return False
            # The background checks have reported once: what the boards and rules read.
            return all(query(prom, expr) for expr in (
                "count(pitwatch_smoke_success) == 2",
                "pitwatch_trading_last_trade_timestamp_seconds",
                "pitwatch_backup_restore_test_ok", "pitwatch_security_http_header_present"))

        wait_until(up, STARTUP, what="every target up and every check reported", interval=1)
        yield Stack(root, cfg, out, journal, prom, f"http://{am}", root / "mail", checked)


@dataclass
class Watched:
    seconds: float
    firing: dict[str, str]     # alert -> description, every non-routine one seen firing
    pending_at_end: list[str]
    mails: list[str]           # subjects


@pytest.fixture(scope="module")
def healthy(stack):
    """Five minutes of Prometheus time on the untouched platform, watched every 5 s."""
    def now() -> float:  # a scalar result is [time, "value"]
        return float(api(stack.prometheus, "/api/v1/query", query="time()")["data"]["result"][1])

    firing: dict[str, str] = {}
    start = now()
    while True:
        current = alerts(stack.prometheus)
        for alert in current:
            if alert["state"] == "firing" and not routine(alert):
                firing.setdefault(json.dumps(alert["labels"], sort_keys=True), describe(alert))
        elapsed = now() - start
        if elapsed >= HEALTHY_SECONDS:
            break
        time.sleep(5)
    # Prometheus's own record of every evaluation, in case one fired between two looks.
    for series in query(stack.prometheus, 'ALERTS{alertstate="firing", alertname!="Watchdog", '
                        f'severity!="info"}}[{elapsed:.0f}s]'):
        labels = {k: v for k, v in series["metric"].items() if k not in ("__name__", "alertstate")}
        firing.setdefault(json.dumps(labels, sort_keys=True), f"{labels} (seen in ALERTS)")
    pending = [describe(a) for a in current if a["state"] == "pending" and not routine(a)]
    mails = [str(m["Subject"]) for _, m in mailsink.read_mail(stack.mail)]
    return Watched(elapsed, firing, pending, mails)


def test_healthy_for_five_minutes_nothing_fires_and_nobody_is_mailed(healthy):
    assert healthy.seconds >= HEALTHY_SECONDS
    assert healthy.firing == {}, \
        "fired on the healthy platform:\n" + "\n".join(healthy.firing.values())
    assert healthy.mails == [], "mailed on the healthy platform:\n" + "\n".join(healthy.mails)
    # Not a failure by itself, but the next minutes' false alarm: shown when it happens.
    if healthy.pending_at_end:
        print("pending at the end of the window:\n" + "\n".join(healthy.pending_at_end))


def test_the_journals_config_checks_clean_and_absent_jobs_do_not_page(stack):
    # The trading queries SEARCH the index on executed_at: no full-scan warning.
    assert "ok (" in stack.config_check and "warning" not in stack.config_check, stack.config_check
    # The same count with each row's text converted first cannot use the index: warned.
    per_row = "where strftime('%s', executed_at) > strftime('%s', 'now', '-1 day')"
    scan = stack.config.with_name("pitwatch-scan.yml")
    scan.write_text(stack.config.read_text().replace(
        "where executed_at >= strftime('%Y-%m-%d %H:%M:%S', 'now', '-1 day')", per_row))
    assert per_row in scan.read_text()
    warned = pitwatch("config", "check", str(scan))
    assert ("warning: trading query trades_last_day: SCAN trades reads the whole table"
            in warned), warned
    # No Litestream and no remediator here: an absence alert on their jobs would page for
    # good on a healthy platform.
    prom = yaml.safe_load((stack.rendered / "prometheus" / "prometheus.yml").read_text())
    scraped = {job["job_name"] for job in prom["scrape_configs"]}
    rules = "".join(p.read_text() for p in (stack.rendered / "prometheus" / "rules").glob("*.yml"))
    absent = set(re.findall(r'absent\(up\{job="([^"]+)"\}\)', rules))
    assert absent and absent <= scraped, f"absence alerts of jobs never scraped: {absent - scraped}"


def test_the_apps_own_job_name_reaches_every_rule_that_singles_it_out(stack):
    # TargetDown leaves the app to AppDown (which names it and may restart it): with the
    # app's job renamed, the exclusion must follow, or one outage is reported twice.
    rules = [rule for path in sorted((stack.rendered / "prometheus" / "rules").glob("*.yml"))
             for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]
    app_down = next(r for r in rules if r.get("alert") == "AppDown")
    assert 'up{job="trading-journal"}' in app_down["expr"]
    target_down = next(r for r in rules if r.get("alert") == "TargetDown")
    excluded = re.search(r'job!~"([^"]+)"', target_down["expr"])[1].split("|")
    assert "trading-journal" in excluded, target_down["expr"]


def test_every_panel_has_data_or_is_declared_blind(stack, healthy):
    from pitwatch import blind  # noqa: PLC0415 (a failure here names the missing module)

    cfg = config.load(stack.config)
    # The boards as rendered for this platform: what its Grafana shows.
    boards = {p.stem: json.loads(p.read_text())
              for p in sorted((stack.rendered / "grafana" / "dashboards").glob("*.json"))}
    items = queries(boards)
    window = Window.last(HEALTHY_SECONDS, scrape_interval=cfg.monitoring.scrape_interval)
    results = run(stack.prometheus, items, window)
    has_data: dict[tuple[str, int, str], bool] = {}
    for q in items:  # Grafana says "No data" when every query of a panel returns nothing
        key = (q.board, q.panel_id, q.panel)
        has_data[key] = has_data.get(key, False) or bool(results[q])
    empty = {(board, title) for (board, _, title), data in has_data.items() if not data}

    declared = {(b.board, b.name): b.reason for b in blind.blind_panels(cfg)}
    undeclared = sorted(empty - declared.keys())
    # The other way round: a panel said to be blind must not show real data. Its
    # `or on() vector(0)` fallback is not data, so it is left out here.
    fed = sorted(key for key in declared if any(
        query_range(stack.prometheus, FALLBACK.sub("", q.expr), window)
        for q in items if (q.board, q.panel) == key))
    for (board, title), reason in declared.items():
        assert NAMES_A_KEY.search(reason), f"{board}: {title}: {reason!r} names no config key"
    print(f"{len(has_data) - len(empty)} of {len(has_data)} panels with data; blind:\n" +
          "\n".join(f"{b}: {t}: {r}" for (b, t), r in sorted(declared.items())))
    assert (undeclared, fed) == ([], []), (
        "panels without data and without a reason:\n" + "\n".join(
            f"{board}: {title}: " + " | ".join(q.expr for q in items
                                                if (q.board, q.panel) == (board, title))
            for board, title in undeclared)
        + "\npanels declared blind that have data:\n" + "\n".join(
            f"{board}: {title} ({declared[board, title]})" for board, title in fed))


def test_api_500s_page_through_the_smoke_alert_without_instrumentation(stack, healthy):
    journal, prom = stack.journal, stack.prometheus
    mails_before = len(mailsink.read_mail(stack.mail))
    app_pid = journal.app.pid

    def smoke_firing() -> list[dict]:
        found = [a for a in alerts(prom)
                 if a["labels"]["alertname"] == "AppSmokeFailing" and a["state"] == "firing"]
        return found if {a["labels"]["url"] for a in found} == SMOKE_NAMES else []

    def smoke_mail():
        new = mailsink.read_mail(stack.mail)[mails_before:]
        return [m for _, m in new if "AppSmokeFailing" in str(m["Subject"])]

    journal.break_api()
    broken = time.monotonic()
    try:
        # A probe every 15 s, `for: 1m`, a 5 s evaluation: well inside three minutes.
        firing = wait_until(smoke_firing, 180, what="AppSmokeFailing firing for both API URLs",
                            interval=2)
        fired = time.monotonic() - broken
        mail = wait_until(smoke_mail, 120, what="the AppSmokeFailing mail", interval=1)[0]
        mailed = time.monotonic() - broken
    finally:
        journal.heal_api()
    print(f"API broken -> AppSmokeFailing firing {fired:.0f}s, mail {mailed:.0f}s")

    assert all(a["labels"]["severity"] == "critical" for a in firing)
    assert all("remediation" not in a["labels"] for a in firing)  # nothing may act on it
    subject = str(mail["Subject"])
    assert subject.startswith("[FIRING:CRITICAL] AppSmokeFailing: "), subject
    body = mail.get_body(("plain",)).get_content()
    assert "(last status 500)" in body, body
    assert f"{RUNBOOK}#appsmokefailing" in body and f"{GRAFANA}/d/pitwatch-overview" in body, body
    assert f"Prometheus: {prom}/graph" in body, body

    # Back to 200s: the smoke probes say so and the alert resolves.
    wait_until(lambda: query(prom, "min(pitwatch_smoke_success) == 1"), 120,
               what="the smoke requests to succeed again", interval=2)
    wait_until(lambda: not [a for a in alerts(prom)
                            if a["labels"]["alertname"] == "AppSmokeFailing"],
               120, what="AppSmokeFailing to resolve", interval=2)
    # The only page was the smoke alert's, and pitwatch did not touch the app.
    others = [str(m["Subject"]) for _, m in mailsink.read_mail(stack.mail)[mails_before:]
              if "AppSmokeFailing" not in str(m["Subject"])]
    assert others == []
    assert journal.app.poll() is None and journal.app.pid == app_pid
