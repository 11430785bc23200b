"""No blind alerts: what a config can never feed is named, with the key that would."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pitwatch import blind, check, render
from pitwatch.core import config
from pitwatch.scrape import scraped_roles
from support import rendered

# A reason names the pitwatch.yml key (section.key) or the trading query that would feed it.
NAMES_A_KEY = re.compile(r"[a-z_]+\.[a-z_]+|a trading query named \w+|a \w+ section")
COMPOSE = Path(__file__).resolve().parent.parent / "compose"
# Blind in compose until the operator adds them: their endpoints, their schema.
SITE_SPECIFIC = {"TLSCertificateExpiring", "NoTradesWhileMarketOpen"}


@pytest.fixture(scope="module")
def demo_config(tmp_path_factory) -> config.Config:
    root = tmp_path_factory.mktemp("demo")
    subprocess.run([sys.executable, "-m", "pitwatch", "demo", "init", str(root / "demo")],
                   check=True, capture_output=True, timeout=120)
    return config.load(root / "demo" / "pitwatch.yml")


def journal_app(tmp_path: Path, **extra: object) -> config.Config:
    """An app pitwatch did not write: no instrumentation, backups or remediation."""
    doc = {"platform": {"app_url": "http://127.0.0.1:8000", "database": str(tmp_path / "j.db"),
                        "instrumented": False},
           "trading_queries": [{"name": "last_trade_timestamp_seconds",
                                "sql": "select max(ts) from trades"}],
           **extra}
    return config.parse(doc)


def test_the_demo_feeds_every_alert_and_panel(demo_config):
    missing = [b for b in blind.blind_alerts(demo_config) + blind.blind_panels(demo_config)
               if not b.off]
    assert missing == []
    # No containers on the demo: the cadvisor job's absence alert is dropped by render.
    assert blind.absent_jobs(demo_config) == {"cadvisor"}


def compose_as_rendered() -> config.Config:
    """compose/pitwatch.yml as the stack's `render` service reads it: the files compose
    bind-mounts into that container found at their sources in compose/."""
    cfg = rendered.compose_config()
    render_svc = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())["services"]["render"]
    mounted = {Path(v.split(":")[1]): COMPOSE / v.split(":")[0]
               for v in render_svc["volumes"] if v.startswith("./")}
    assert cfg.backups.litestream_config in mounted, "render does not see litestream.yml"
    backups = cfg.backups.model_copy(update={"litestream_config": mounted[cfg.backups.litestream_config]})
    return cfg.model_copy(update={"backups": backups})


def test_compose_names_what_it_cannot_feed_and_why():
    cfg = compose_as_rendered()
    alerts = {b.name: b for b in blind.blind_alerts(cfg)}
    panels = blind.blind_panels(cfg)
    assert "TLSCertificateExpiring" in alerts and not alerts["TLSCertificateExpiring"].off
    assert {("system", "App memory"), ("trading", "Open positions by symbol")} <= \
        {(p.board, p.name) for p in panels}
    for b in list(alerts.values()) + panels:
        assert NAMES_A_KEY.search(b.reason), b


def test_compose_feeds_every_alert_but_the_sites_own():
    """What the render container sees: Litestream's metrics (its litestream.yml has an
    addr) and the app's memory from cAdvisor."""
    missing = {b.name for b in blind.blind_alerts(compose_as_rendered()) if not b.off}
    assert missing == SITE_SPECIFIC
    # Without the mounted litestream.yml (this machine has no /etc/litestream.yml) the
    # Litestream alerts would be blind: the mapping above is what makes them fed.
    assert "LitestreamNotSyncing" in {b.name for b in blind.blind_alerts(rendered.compose_config())}


def test_compose_app_memory_alert_reads_cadvisor():
    cfg = compose_as_rendered()
    assert "cadvisor" in scraped_roles(cfg)
    assert "AppMemoryHigh" not in {b.name for b in blind.blind_alerts(cfg)}
    # Without the cadvisor job (and no app_pid_file) it is blind, and says why.
    jobs = {k: v for k, v in cfg.monitoring.jobs.items() if k != "cadvisor"}
    bare = cfg.model_copy(update={"monitoring": cfg.monitoring.model_copy(update={"jobs": jobs})})
    blind_now = {b.name: b for b in blind.blind_alerts(bare)}
    assert "cadvisor" in blind_now["AppMemoryHigh"].reason


def test_container_panels_fall_back_to_the_app_process(demo_config, tmp_path):
    """Without containers the System board's per-container panels show the app process;
    with neither, they are blind and say which keys would feed them."""
    from pitwatch.dashboards import build

    boards = {"system": build.models()["system"]}
    titles = {"Memory by container", "CPU by container"}
    assert titles <= {p["title"] for p in blind.panels(boards["system"])}
    assert not titles & {b.name for b in blind.blind_panels(demo_config, boards)}
    reasons = {b.name: b.reason for b in blind.blind_panels(journal_app(tmp_path), boards)}
    for title in titles:
        assert "cadvisor" in reasons[title] and "platform.app_pid_file" in reasons[title]


def test_an_uninstrumented_app_without_backups(tmp_path):
    cfg = journal_app(tmp_path)
    alerts = {b.name: b.reason for b in blind.blind_alerts(cfg)}
    for name in ("AppHighErrorRate", "AppHighLatency", "AppDatabaseErrors",
                 "AppAvailabilityBudgetBurn", "AppLatencyBudgetBurn"):
        assert "platform.instrumented" in alerts[name], name
    assert alerts["BackupSnapshotTooOld"] == "needs a backups section"
    assert "AppSmokeFailing" not in alerts  # smoke requests stand in for the instrumentation
    assert "NoTradesWhileMarketOpen" not in alerts
    # No remediator, no Litestream, no containers: their absence alerts would page for good.
    assert blind.absent_jobs(cfg) == {"remediator", "litestream", "cadvisor"}
    findings = check.blind_findings(cfg)
    assert any(f.concern == "blind" and f.check == "alert AppHighErrorRate"
               and "never fires" in f.detail for f in findings)


def test_render_leaves_out_absence_alerts_of_unscraped_jobs(tmp_path):
    cfg = journal_app(tmp_path, monitoring={"jobs": {"app": {"name": "journal"}}})
    render.write(cfg, tmp_path / "out")
    meta = (tmp_path / "out" / "prometheus" / "rules" / "meta.yml").read_text()
    jobs = {r["labels"].get("job") for g in yaml.safe_load(meta)["groups"] for r in g["rules"]
            if r["alert"] == "ScrapeJobAbsent"}
    assert jobs == {"journal", "exporter", "alertmanager", "prometheus"}
    rules = sorted(map(str, (tmp_path / "out" / "prometheus" / "rules").glob("*.yml")))
    out = subprocess.run(["promtool", "check", "rules", *rules], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_render_says_not_configured_on_a_blind_panel(tmp_path):
    cfg = journal_app(tmp_path)
    render.write(cfg, tmp_path / "out")
    board = json.loads((tmp_path / "out" / "grafana" / "dashboards" / "trading.json").read_text())
    by_title = {p["title"]: p for p in blind.panels(board)}
    no_value = by_title["5xx ratio"]["fieldConfig"]["defaults"]["noValue"]
    assert no_value.startswith("not configured: ") and "platform.instrumented" in no_value
    # A panel this config feeds keeps Grafana's own text.
    assert by_title["Last trade age"]["fieldConfig"]["defaults"].get("noValue") in (None, "No data")


@pytest.mark.parametrize("expr,why", [
    ("rate(pitwatch_app_http_request_total[5m]) > 1", "platform.instrumented"),
    ("pitwatch_app_http_request_total or vector(0)", "platform.instrumented"),
    ("(time() - pitwatch_backup_snapshot_last_success_timestamp_seconds > 3600)"
     " or pitwatch_smoke_success == 0", None),
    ("pitwatch_smoke_success == 0 unless on() pitwatch_app_http_request_total", None),
    ('up{job="litestream"} == 0', "job litestream has no target"),
    ("vector(1)", None),
])
def test_why_blind_reads_the_alternatives_of_an_expression(tmp_path, expr, why):
    got = blind.why_blind(expr, journal_app(tmp_path))
    assert (got is None) if why is None else (why in got), got


def test_one_fed_name_of_a_name_regex_is_enough(tmp_path):
    cfg = journal_app(tmp_path, backups={"snapshots_dir": str(tmp_path / "snaps")})
    either = ('{__name__=~"pitwatch_backup_snapshot_last_success_timestamp_seconds'
              '|pitwatch_backup_litestream_last_replica_write_timestamp_seconds"}')
    assert blind.why_blind(either, cfg) is None
    assert "litestream_config" in blind.why_blind("rate(litestream_sync_count[1m])", cfg)


def test_render_renames_the_app_job_in_rules_and_boards(tmp_path):
    cfg = journal_app(tmp_path, monitoring={"jobs": {"app": {"name": "journal"}}})
    render.write(cfg, tmp_path / "out")
    rules = "".join(p.read_text() for p in (tmp_path / "out" / "prometheus" / "rules").glob("*.yml"))
    assert 'job!~"journal|remediator|litestream"' in rules  # TargetDown leaves the app to AppDown
    boards = "".join(p.read_text() for p in (tmp_path / "out" / "grafana" / "dashboards").glob("*.json"))
    assert 'job=\\"app\\"' not in boards and 'job=\\"journal\\"' in boards
