"""``pitwatch render``: one ``pitwatch.yml`` -> every file the monitoring side reads.

    OUT/prometheus/prometheus.yml          scrape jobs, rule files, Alertmanagers
    OUT/prometheus/rules/*.yml             the shipped rules, job names and runbook links
    OUT/alertmanager/alertmanager.yml      mail relay, remediation webhook, chat, heartbeat
    OUT/alertmanager/templates/*.tmpl      the mail template, with the links
    OUT/grafana/provisioning/...           datasource and dashboard provider
    OUT/grafana/dashboards/*.json          the boards, with the runbook links
    OUT/runbook.md                         what each alert means and what to do

The shipped files under ``alerts/`` and ``compose/grafana/`` are the templates. The demo
and the compose stack (its one-shot ``render`` service) render their own pitwatch.yml
through here, as a real install does. Only addresses, names, secrets and links change,
and the rules and panels a platform cannot feed (:mod:`pitwatch.blind`); never a
timing, an expression's logic or a route's matchers.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from pitwatch import blind
from pitwatch.core import resources
from pitwatch.core.config import JOB_ROLES, Config, ScrapeJob
from pitwatch.scrape import default_targets, job_names, local_address

# The runbook and board links as the shipped files carry them.
# The window the shipped gauge alerts look back over (alerts/rules/meta.yml): it covers
# one failed scrape at up to a third of it.
GAUGE_WINDOW = 15.0
SHIPPED_RUNBOOK = "https://github.com/pitwatch/pitwatch/blob/main/alerts/runbook.md"
SHIPPED_GRAFANA = "http://localhost:3000"
# A job matcher (job="app", job!~"app|remediator") and a rule's static `job:` label.
JOB_MATCHER = re.compile(r'(\bjob(?:=~|!~|!=|=)")([^"]*)(")')
RULE_JOB_LABEL = re.compile(r"^(\s+job: )(%s)$" % "|".join(JOB_ROLES), re.M)


def rename_jobs(promql: str, names: dict[str, str]) -> str:
    """Every job matcher of ``promql`` with this platform's job names (role -> name)."""
    return JOB_MATCHER.sub(lambda m: m.group(1) + "|".join(
        names.get(part, part) for part in m.group(2).split("|")) + m.group(3), promql)


def prometheus(cfg: Config, rules: str = "rules/*.yml") -> dict:
    """prometheus.yml: one job per role that has targets, in the roles' order."""
    mon, names, derived = cfg.monitoring, job_names(cfg), default_targets(cfg)
    jobs = []
    for role in JOB_ROLES:
        spec = mon.jobs.get(role) or ScrapeJob()
        targets = spec.targets or derived.get(role, [])
        if not targets:
            continue
        job: dict = {"job_name": names[role]}
        if spec.scheme != "http":
            job["scheme"] = spec.scheme
        if spec.metrics_path != "/metrics":
            job["metrics_path"] = spec.metrics_path
        job.update(_discovery(targets, spec.dns))
        jobs.append(job)
    config = {
        "global": {"scrape_interval": f"{mon.scrape_interval:g}s",
                   "scrape_timeout": f"{max(mon.scrape_interval - 1, 1):g}s",
                   "evaluation_interval": f"{mon.evaluation_interval:g}s"},
        "rule_files": [rules],
        "alerting": {"alertmanagers": [_discovery(mon.alertmanagers, mon.alertmanagers_dns)]},
        "scrape_configs": jobs,
    }
    if mon.external_labels:
        config["global"]["external_labels"] = dict(mon.external_labels)
    if mon.remote_write:
        config["remote_write"] = [dict(w) for w in mon.remote_write]
    return config


def _discovery(targets: list[str], dns: bool) -> dict:
    if not dns:
        return {"static_configs": [{"targets": list(targets)}]}
    by_port: dict[int, list[str]] = {}
    for target in targets:
        host, _, port = target.rpartition(":")
        by_port.setdefault(int(port), []).append(host)
    return {"dns_sd_configs": [{"names": hosts, "type": "A", "port": port}
                               for port, hosts in by_port.items()]}


def rule_files(cfg: Config) -> dict[str, str]:
    """File name -> rule file text, with this platform's job names and runbook.

    The absence alert of a job with no target is left out: it would page for good on a
    healthy platform that simply has no such component.
    """
    names = job_names(cfg)
    runbook = cfg.links.runbook
    unscraped = {f'absent(up{{job="{names[role]}"}})' for role in blind.absent_jobs(cfg)}
    out = {}
    for path in sorted(resources.alerts("rules").glob("*.yml")):
        text = rename_jobs(path.read_text(), names)
        text = RULE_JOB_LABEL.sub(lambda m: m.group(1) + names[m.group(2)], text)
        if runbook:
            text = text.replace(SHIPPED_RUNBOOK, runbook.rstrip("/"))
        if any(expr in text for expr in unscraped):
            doc = yaml.safe_load(text)
            for group in doc["groups"]:
                group["rules"] = [r for r in group["rules"] if r.get("expr") not in unscraped]
            text = yaml.safe_dump(doc, sort_keys=False, width=100)
        out[path.name] = text
    return out


def alertmanager(cfg: Config, templates: str = "templates/*.tmpl") -> dict:
    """alertmanager.yml: the shipped routes with this platform's relay, people and hooks."""
    config = yaml.safe_load(resources.alerts("alertmanager.yml").read_text())
    config["templates"] = [templates]
    mail, glob = cfg.mail, config["global"]
    if mail:
        glob["smtp_smarthost"] = mail.smarthost
        glob["smtp_from"] = mail.sender
        glob["smtp_require_tls"] = mail.require_tls
        if mail.password_file:
            glob["smtp_auth_username"] = mail.username or mail.sender
            glob["smtp_auth_password_file"] = str(mail.password_file)
    receivers = {r["name"]: r for r in config["receivers"]}
    for name in ("mail-critical", "mail-warning"):
        for email in receivers[name].get("email_configs", []):
            if mail:
                email["to"] = ", ".join(mail.to)
    hook = receivers["remediator"]["webhook_configs"][0]
    if cfg.remediation:
        hook["url"] = (cfg.monitoring.remediator_url
                       or f"http://{local_address(cfg.remediation.listen)}").rstrip("/") + "/alerts"
        auth = hook["http_config"]["authorization"]
        if cfg.remediation.auth == "bearer":
            auth["credentials_file"] = str(cfg.remediation.token_file)
        else:
            del hook["http_config"]
    else:  # nothing to call: the machine-actionable alerts are mailed only
        config["route"]["routes"] = [r for r in config["route"]["routes"]
                                     if r["receiver"] != "remediator"]
        config["receivers"] = [r for r in config["receivers"] if r["name"] != "remediator"]
    chat = receivers["chat"]
    if cfg.chat:
        slack = chat["slack_configs"][0]
        slack["api_url_file"] = str(cfg.chat.url_file)
        slack["channel"] = cfg.chat.channel
        routes = config["route"]["routes"]
        first_mail = next(i for i, r in enumerate(routes) if r["receiver"].startswith("mail-"))
        routes.insert(first_mail, {"receiver": "chat", "continue": True, "matchers": [
            'severity=~"critical|warning"', 'alertname!="Watchdog"']})
    else:
        config["receivers"].remove(chat)
    if cfg.heartbeat:
        receivers["watchdog"]["webhook_configs"] = [{"url": cfg.heartbeat.url,
                                                     "send_resolved": False}]
        watchdog = next(r for r in config["route"]["routes"] if r["receiver"] == "watchdog")
        # One ping per group_interval needs a shorter repeat_interval (alertmanager.yml).
        watchdog["group_interval"] = _minutes(cfg.heartbeat.interval)
        watchdog["repeat_interval"] = _minutes(max(1, cfg.heartbeat.interval // 2))
    return config


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"


def mail_template(cfg: Config) -> str:
    """The mail template with the board link people reach."""
    text = resources.alerts("templates", "pitwatch.tmpl").read_text()
    if cfg.links.grafana:
        text = text.replace(SHIPPED_GRAFANA, cfg.links.grafana.rstrip("/"))
    return text


def grafana_provisioning(cfg: Config, dashboards_dir: str) -> dict[str, dict]:
    """Relative path -> YAML document of Grafana's provisioning."""
    datasource = yaml.safe_load(
        resources.compose("grafana", "provisioning", "datasources", "prometheus.yml").read_text())
    for ds in datasource["datasources"]:
        ds["url"] = cfg.monitoring.prometheus_url
        ds["jsonData"]["timeInterval"] = f"{cfg.monitoring.scrape_interval:g}s"
    provider = yaml.safe_load(
        resources.compose("grafana", "provisioning", "dashboards", "pitwatch.yml").read_text())
    for p in provider["providers"]:
        p["options"]["path"] = dashboards_dir
    return {"datasources/prometheus.yml": datasource, "dashboards/pitwatch.yml": provider}


def boards(cfg: Config) -> dict[str, str]:
    """File name -> board JSON with this platform's job names and runbook link; a panel
    this config can never feed says "not configured" and why, instead of "No data"."""
    names = job_names(cfg)
    out = {}
    for path in sorted(resources.compose("grafana", "dashboards").glob("*.json")):
        text = path.read_text()
        if cfg.links.runbook:
            text = text.replace(SHIPPED_RUNBOOK, cfg.links.runbook.rstrip("/"))
        model = json.loads(text)
        # Judged on the shipped expressions, whose job matchers name roles.
        missing = {b.name: b.reason for b in blind.blind_panels(cfg, {path.stem: model})}
        for panel in blind.panels(model):
            if panel.get("title") in missing:
                defaults = panel.setdefault("fieldConfig", {}).setdefault("defaults", {})
                defaults["noValue"] = f"not configured: {missing[panel['title']]}"
            if panel.get("description"):
                panel["description"] = rename_jobs(panel["description"], names)
            for target in panel["targets"]:
                for key in ("expr", "query"):
                    if key in target:
                        target[key] = rename_jobs(target[key], names)
        out[path.name] = json.dumps(model, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    return out


def files(cfg: Config, out: Path) -> dict[Path, str]:
    """Every rendered file under ``out`` -> its text."""
    out = out.resolve()
    dump = lambda doc: yaml.safe_dump(doc, sort_keys=False, width=100)
    rendered = {
        out / "prometheus" / "prometheus.yml": dump(prometheus(cfg)),
        out / "alertmanager" / "alertmanager.yml": dump(alertmanager(cfg)),
        out / "alertmanager" / "templates" / "pitwatch.tmpl": mail_template(cfg),
        out / "runbook.md": resources.alerts("runbook.md").read_text(),
    }
    rendered.update({out / "prometheus" / "rules" / n: t for n, t in rule_files(cfg).items()})
    dashboards_dir = out / "grafana" / "dashboards"
    rendered.update({out / "grafana" / "provisioning" / rel: dump(doc) for rel, doc
                     in grafana_provisioning(cfg, str(dashboards_dir)).items()})
    rendered.update({dashboards_dir / n: t for n, t in boards(cfg).items()})
    return rendered


def write(cfg: Config, out: Path) -> list[Path]:
    """Write (or refresh) every rendered file; returns their paths."""
    written = []
    for path, text in files(cfg, out).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text)
            tmp.replace(path)  # Prometheus may reload at any moment: never a half file
        written.append(path)
    return written


def warnings(cfg: Config) -> list[str]:
    """What the rendered files lack that people will miss."""
    out = []
    if cfg.links.runbook is None:
        out.append("links.runbook is not set: alerts link to the runbook in pitwatch's "
                   "repository, not to your team's copy")
    if cfg.links.grafana is None:
        out.append("links.grafana is not set: mails link to http://localhost:3000")
    if cfg.mail is None:
        out.append("no mail section: Alertmanager mails the shipped placeholder addresses")
    if cfg.heartbeat is None and cfg.chat is None:
        out.append("no heartbeat and no chat: nobody hears when Prometheus or Alertmanager "
                   "stops, or when Alertmanager cannot mail")
    if cfg.monitoring.scrape_interval * 3 > GAUGE_WINDOW:
        out.append(f"monitoring.scrape_interval {cfg.monitoring.scrape_interval:g}s: the "
                   f"gauge alerts look back {GAUGE_WINDOW:g}s, so one failed scrape restarts "
                   "their `for` (keep it at 5s or less)")
    return out
