"""``pitwatch render``: one pitwatch.yml -> configs that promtool and amtool accept, for
the demo, for compose and for a platform that names things its own way."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pitwatch import render
from pitwatch.core import config

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_CONFIG = ROOT / "compose" / "pitwatch.yml"


def foreign(tmp_path: Path) -> Path:
    """A journal app's config: its own job names, a relay with auth, chat, heartbeat, links."""
    (tmp_path / "token").write_text("t0ken\n")
    (tmp_path / "smtp.password").write_text("secret\n")
    (tmp_path / "chat.url").write_text("https://chat.example.com/hooks/abc\n")
    path = tmp_path / "pitwatch.yml"
    path.write_text(f"""\
platform:
  app_url: http://10.0.0.5:8000
  database: /srv/journal/journal.db
backups:
  snapshots_dir: /srv/backups
remediation:
  listen: 0.0.0.0:9095
  token_file: {tmp_path / 'token'}
  journal: {tmp_path / 'journal.db'}
  policy:
    - name: roll
      match: {{remediation: rollback}}
      action: rollback
mail:
  smarthost: smtp.example.com:587
  sender: alerts@journal.example.com
  to: [ops@journal.example.com, lead@journal.example.com]
  password_file: {tmp_path / 'smtp.password'}
  require_tls: true
chat:
  url_file: {tmp_path / 'chat.url'}
  channel: "#journal"
heartbeat:
  url: https://hc.example.com/ping/1234
  interval: 2m
monitoring:
  jobs:
    app: {{name: trading-journal, targets: ["10.0.0.5:8000"], metrics_path: /internal/metrics}}
    exporter: {{name: journal-pitwatch}}
  alertmanagers: ["10.0.0.9:9093"]
links:
  runbook: https://wiki.journal.example.com/pitwatch/runbook
  grafana: https://grafana.journal.example.com
  remediator: https://ops.journal.example.com/pitwatch
""")
    return path


def demo(tmp_path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pitwatch", "demo", "init", str(tmp_path / "demo")],
                   check=True, capture_output=True, timeout=120)
    return tmp_path / "demo" / "pitwatch.yml"


CONFIGS = {"demo": demo, "compose": lambda _: COMPOSE_CONFIG, "foreign": foreign}


def tool(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", CONFIGS)
def test_rendered_configs_pass_promtool_and_amtool(name, tmp_path):
    cfg_path = CONFIGS[name](tmp_path)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "pitwatch", "render", str(out),
                           "--config", str(cfg_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    prom = out / "prometheus" / "prometheus.yml"
    checked = tool("promtool", "check", "config", str(prom))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = sorted((out / "prometheus" / "rules").glob("*.yml"))
    assert len(rules) >= 7
    checked = tool("promtool", "check", "rules", *map(str, rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    am = out / "alertmanager" / "alertmanager.yml"
    checked = tool("amtool", "check-config", str(am))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 templates" in checked.stdout  # the rendered template is found beside it
    # A critical remediation alert reaches the webhook (when there is one) and mail.
    routed = tool("amtool", "config", "routes", "test", f"--config.file={am}",
                  "severity=critical", "remediation=rollback", "alertname=AppHighErrorRate")
    assert routed.returncode == 0, routed.stderr
    assert "mail-critical" in routed.stdout and "remediator" in routed.stdout
    # A restore alert holds back the rollback whatever the platform calls its jobs.
    inhibit = yaml.safe_load(am.read_text())["inhibit_rules"]
    assert {"source_matchers": ['remediation="restore"'],
            "target_matchers": ['remediation="rollback"']} in inhibit
    boards = list((out / "grafana" / "dashboards").glob("*.json"))
    assert len(boards) >= 7 and all(json.loads(b.read_text())["uid"] for b in boards)


def test_a_platform_names_its_jobs_and_links_and_they_reach_every_file(tmp_path):
    cfg = config.load(foreign(tmp_path))
    out = tmp_path / "out"
    render.write(cfg, out)
    prom = yaml.safe_load((out / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert jobs["trading-journal"]["metrics_path"] == "/internal/metrics"
    assert jobs["trading-journal"]["static_configs"] == [{"targets": ["10.0.0.5:8000"]}]
    assert jobs["journal-pitwatch"]["static_configs"] == [{"targets": ["127.0.0.1:9108"]}]
    assert jobs["remediator"]["static_configs"] == [{"targets": ["127.0.0.1:9095"]}]
    assert "litestream" not in jobs  # nothing configured, nothing scraped
    assert prom["alerting"]["alertmanagers"] == [{"static_configs": [{"targets": ["10.0.0.9:9093"]}]}]

    rules = "".join(p.read_text() for p in (out / "prometheus" / "rules").glob("*.yml"))
    assert 'job="app"' not in rules and 'job="exporter"' not in rules
    assert 'absent(up{job="trading-journal"})' in rules
    assert 'up{job="journal-pitwatch"}' in rules or 'absent(up{job="journal-pitwatch"})' in rules
    assert render.SHIPPED_RUNBOOK not in rules
    assert "https://wiki.journal.example.com/pitwatch/runbook#appdown" in rules

    am = yaml.safe_load((out / "alertmanager" / "alertmanager.yml").read_text())
    glob = am["global"]
    assert glob["smtp_smarthost"] == "smtp.example.com:587" and glob["smtp_require_tls"] is True
    assert glob["smtp_auth_username"] == "alerts@journal.example.com"
    assert glob["smtp_auth_password_file"] == str(tmp_path / "smtp.password")
    receivers = {r["name"]: r for r in am["receivers"]}
    assert receivers["mail-critical"]["email_configs"][0]["to"] == \
        "ops@journal.example.com, lead@journal.example.com"
    hook = receivers["remediator"]["webhook_configs"][0]
    assert hook["url"] == "http://127.0.0.1:9095/alerts"
    assert hook["http_config"]["authorization"]["credentials_file"] == str(tmp_path / "token")
    assert receivers["chat"]["slack_configs"][0]["api_url_file"] == str(tmp_path / "chat.url")
    assert receivers["watchdog"]["webhook_configs"] == [
        {"url": "https://hc.example.com/ping/1234", "send_resolved": False}]
    template = (out / "alertmanager" / "templates" / "pitwatch.tmpl").read_text()
    # The board link (the overview, or the remediation board for remediation alerts).
    assert "Board:      https://grafana.journal.example.com/d/" in template
    # The status page where people reach it, not the address Prometheus scrapes.
    assert "Output:     https://ops.journal.example.com/pitwatch/{{ with .Labels.run }}" in template
    assert "http://{{ .Labels.instance }}" not in template
    assert "localhost:3000" not in template

    am_file = str(out / "alertmanager" / "alertmanager.yml")
    chat = tool("amtool", "config", "routes", "test", f"--config.file={am_file}",
                "severity=warning", "alertname=BackupSnapshotTooOld")
    assert chat.stdout.strip() == "chat,mail-warning"
    beat = tool("amtool", "config", "routes", "test", f"--config.file={am_file}",
                "alertname=Watchdog", "severity=none")
    assert beat.stdout.strip() == "watchdog"


def test_without_remediation_and_chat_nothing_points_at_them(tmp_path):
    path = tmp_path / "pitwatch.yml"
    path.write_text("platform:\n  database: /srv/t.db\nmail:\n  smarthost: relay:25\n")
    am = render.alertmanager(config.load(path))
    names = {r["name"] for r in am["receivers"]}
    assert "remediator" not in names and "chat" not in names
    routes = yaml.safe_dump(am["route"])
    assert "remediator" not in routes and "chat" not in routes


def test_the_heartbeat_goes_once_per_interval(tmp_path):
    """Alertmanager re-sends only once repeat_interval has passed since the last send was
    logged, a little after the flush: an equal repeat_interval would skip every other
    group_interval (tests/test_alerting_selfwatch.py sees the real cadence)."""
    am = render.alertmanager(config.load(foreign(tmp_path)))  # heartbeat.interval: 2m
    [watchdog] = [r for r in am["route"]["routes"] if r["receiver"] == "watchdog"]
    assert watchdog["group_interval"] == "2m"
    assert config.parse_duration(watchdog["repeat_interval"]) < 120
    shipped = yaml.safe_load((ROOT / "alerts" / "alertmanager.yml").read_text())
    [route] = [r for r in shipped["route"]["routes"] if r["receiver"] == "watchdog"]
    assert config.parse_duration(route["repeat_interval"]) < config.parse_duration(route["group_interval"])


def test_prometheus_scrapes_itself_and_alertmanager_by_default(tmp_path):
    path = tmp_path / "pitwatch.yml"
    path.write_text("platform:\n  database: /srv/t.db\n")
    jobs = {j["job_name"]: j["static_configs"][0]["targets"]
            for j in render.prometheus(config.load(path))["scrape_configs"]}
    assert jobs["prometheus"] == ["127.0.0.1:9090"]
    assert jobs["alertmanager"] == ["127.0.0.1:9093"]
    for name in CONFIGS:  # the demo, compose and a foreign platform alike
        (tmp_path / name).mkdir()
        cfg = config.load(CONFIGS[name](tmp_path / name))
        jobs = {j["job_name"] for j in render.prometheus(cfg)["scrape_configs"]}
        assert {"prometheus", "alertmanager"} <= jobs, name


def test_warnings_name_what_leaves_alerting_unwatched(tmp_path):
    path = tmp_path / "pitwatch.yml"
    path.write_text("platform:\n  database: /srv/t.db\n")
    said = " ".join(render.warnings(config.load(path)))
    assert "no heartbeat and no chat" in said
    assert "scrape_interval" not in said  # the default 5s is what the gauge window covers
    path.write_text("platform:\n  database: /srv/t.db\nheartbeat:\n  url: https://hc.test/ping\n"
                    "monitoring:\n  scrape_interval: 15s\n")
    said = " ".join(render.warnings(config.load(path)))
    assert "no heartbeat" not in said
    assert "monitoring.scrape_interval 15s" in said and "15s" in said


def test_the_platforms_own_targets_reach_the_rendered_rules(tmp_path):
    """`slo:` moves the thresholds: the burn rules are generated for its objectives, the
    hand-written alerts compare with its values, and the rest stays as shipped."""
    path = foreign(tmp_path)
    path.write_text(path.read_text() + "slo:\n  availability: 0.999\n"
                    "  app_memory_bytes: 2000000000\n  volume_free_critical: 0.02\n")
    cfg = config.load(path)
    out = tmp_path / "out"
    render.write(cfg, out)
    rules = out / "prometheus" / "rules"
    checked = tool("promtool", "check", "rules", *map(str, sorted(rules.glob("*.yml"))))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    def alerts(name: str) -> dict[tuple[str, str], str]:
        doc = yaml.safe_load((rules / name).read_text())
        return {(r["alert"], r["labels"]["severity"]): r["expr"] for g in doc["groups"]
                for r in g["rules"] if "alert" in r}

    def objective(name: str) -> str:
        doc = yaml.safe_load((rules / name).read_text())
        return next(r["expr"] for g in doc["groups"] for r in g["rules"]
                    if r.get("record") == "slo:objective:ratio" and r["labels"]["slo"] == "availability")

    assert objective("slo.yml").strip() == "vector(0.999)"
    system = alerts("system.yml")
    memory = system[("AppMemoryHigh", "warning")]
    # Both inputs (the container under compose, the process elsewhere) move.
    assert memory.count("> 2000000000") == 2 and "1e9" not in memory, memory
    database = alerts("database.yml")
    assert "< 0.02" in database[("DatabaseVolumeLowSpace", "critical")]
    assert "< 0.1" in database[("DatabaseVolumeLowSpace", "warning")]  # not moved
    # The rename of the app's job reached the generated rules too.
    assert 'job="trading-journal"' in (rules / "slo.yml").read_text()
    # Without a slo: section the shipped files come out as they are (comments kept).
    plain = tmp_path / "plain"
    (tmp_path / "p").mkdir()
    render.write(config.load(foreign(tmp_path / "p")), plain)
    assert "# " in (plain / "prometheus" / "rules" / "system.yml").read_text()
    assert (plain / "prometheus" / "rules" / "slo.yml").read_text().count("vector(0.9995)") == 1
