"""Which shipped alerts and board panels a config can never feed, and why.

Every series an alert or a panel reads comes from a source that ``pitwatch.yml``
switches on or off: the app's instrumentation, a Litestream job, a backups section, a
pid file, Redis, certificates… An alert whose every input is switched off can never
fire, and a panel shows "No data" forever; nothing in Prometheus says so. Here each is
named with the key that would feed it. ``pitwatch check`` lists them, and ``pitwatch
render`` writes the reason into a blind panel instead of "No data" and leaves out the
absence alert of a job that has no target (it would page on a healthy platform).

The analysis reads metric names and job selectors out of PromQL text: good enough for
the shipped expressions, which it is tested against, not a PromQL parser.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable

import yaml

from pitwatch.core import resources
from pitwatch.core.config import Config
from pitwatch.scrape import litestream_addr, scraped_roles

Feeds = Callable[[Config], bool]


def _queries(*names: str) -> Feeds:
    return lambda c: any(q.name in names for q in c.trading_queries)


# Metric-name prefix -> (is it fed by this config?, what would feed it). The first
# matching prefix wins: longer ones come first. A reason starting with OFF names a
# check the config switched off on purpose: silent by choice, not blind.
OFF = "switched off: "
SOURCES: list[tuple[str, Feeds, str]] = [
    ("pitwatch_app_process_", lambda c: c.platform.app_pid_file is not None,
     "needs platform.app_pid_file"),
    ("pitwatch_app_", lambda c: c.platform.instrumented,
     "needs the app instrumented (pitwatch.exporters.flask.instrument, platform.instrumented)"),
    # The DB query SLI falls back to the exporter's probe: always fed. The other SLO
    # recording rules (alerts/rules/slo.yml) read the app's request metrics.
    ("slo:db_query_", lambda c: True, ""),
    ("slo:", lambda c: c.platform.instrumented,
     "needs the app instrumented (its request metrics feed the slo: recording rules; "
     "platform.instrumented)"),
    ("pitwatch_backup_litestream_", lambda c: bool(c.backups and c.backups.litestream_config),
     "needs backups.litestream_config"),
    ("litestream_", lambda c: litestream_addr(c) is not None,
     "needs backups.litestream_config with an addr (Litestream's own metrics)"),
    ("pitwatch_backup_", lambda c: c.backups is not None, "needs a backups section"),
    ("pitwatch_redis_", lambda c: c.platform.redis_url is not None, "needs platform.redis_url"),
    ("pitwatch_security_tls_",
     lambda c: bool(c.security.certificates or c.security.tls_endpoints),
     "needs security.certificates or security.tls_endpoints"),
    ("pitwatch_security_fail2ban_", lambda c: c.security.fail2ban,
     OFF + "security.fail2ban is false"),
    ("pitwatch_security_firewall_", lambda c: c.security.firewall != "off",
     OFF + "security.firewall is off"),
    ("pitwatch_security_login_failures_", lambda c: bool(c.security.auth_logs),
     "needs security.auth_logs"),
    ("pitwatch_security_http_header_", lambda c: bool(c.security.required_headers),
     OFF + "security.required_headers is empty"),
    ("pitwatch_remediation_", lambda c: c.remediation is not None,
     "needs a remediation section"),
    ("pitwatch_trading_last_trade_", _queries("last_trade_timestamp_seconds"),
     "needs a trading query named last_trade_timestamp_seconds"),
    ("pitwatch_trading_open_positions", _queries("open_positions"),
     "needs a trading query named open_positions"),
    ("pitwatch_activity_", lambda c: c.trading.activity != "none",
     OFF + "trading.activity is none"),
    ("pitwatch_smoke_", lambda c: c.smoke.urls != [], OFF + "smoke.urls is empty"),
    # cAdvisor's container metrics: a platform outside containers has none, by choice.
    ("container_", lambda c: "cadvisor" in scraped_roles(c),
     OFF + "monitoring.jobs has no cadvisor job (no containers watched)"),
]
METRIC = re.compile(r"\b(pitwatch_[a-z0-9_]+|litestream_[a-z0-9_]+|container_[a-z0-9_]+|slo:[a-z0-9_:]+)")
NAME_REGEX = re.compile(r'__name__=~"([^"]+)"')  # any one of several metrics
JOB = re.compile(r'job=~?"([^"]+)"')


@dataclass(frozen=True)
class Blind:
    board: str | None  # None for an alert
    name: str  # the alert's name or the panel's title
    reason: str

    @property
    def off(self) -> bool:
        """Every missing input was switched off on purpose."""
        return all(r.startswith(OFF) for r in self.reason.split("; "))


def _split(expr: str, word: str) -> list[str]:
    """``expr`` split at ``word`` where it stands outside any parentheses."""
    parts, depth, start = [], 0, 0
    for m in re.finditer(rf"[()]|\b{word}\b", expr):
        if m.group() == "(":
            depth += 1
        elif m.group() == ")":
            depth -= 1
        elif depth == 0:
            parts.append(expr[start:m.start()])
            start = m.end()
    return parts + [expr[start:]]


def _missing(expr: str, cfg: Config, jobs: set[str]) -> list[str]:
    """Why one alternative of an expression gets no data (empty: it can)."""
    out = []
    for job in JOB.findall(expr):
        if "|" not in job and job not in jobs:
            out.append(f"job {job} has no target (monitoring.jobs.{job})")
    for m in NAME_REGEX.finditer(expr):
        reasons = [_unfed(name, cfg) for name in m.group(1).split("|")]
        if all(reasons):
            out.append(reasons[0])
    for metric in METRIC.findall(NAME_REGEX.sub("", expr)):
        why = _unfed(metric, cfg)
        if why:
            out.append(why)
    return list(dict.fromkeys(out))  # a label name (container_label_…) reads like a metric


def _unfed(metric: str, cfg: Config) -> str | None:
    """Why this config never produces ``metric``; None when it does (or it is not ours)."""
    for prefix, feeds, reason in SOURCES:
        if metric.startswith(prefix):
            return None if feeds(cfg) else reason
    return None


def why_blind(expr: str, cfg: Config, jobs: set[str] | None = None) -> str | None:
    """Why ``expr`` can never have data under ``cfg``, or None when it can.

    It can when one alternative of a top-level ``or`` can; what follows ``unless`` only
    removes results. Alternatives naming no series (``vector(0)``) do not count.
    """
    if jobs is None:
        jobs = scraped_roles(cfg)
    reasons = []
    for alternative in _split(expr, "or"):
        alternative = _split(alternative, "unless")[0]
        if not (METRIC.search(alternative) or JOB.search(alternative)):
            continue
        missing = _missing(alternative, cfg, jobs)
        if not missing:
            return None
        reasons += [r for r in missing if r not in reasons]
    return "; ".join(reasons) or None


def _rules() -> list[dict]:
    return [rule for path in sorted(resources.alerts("rules").glob("*.yml"))
            for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule]


def blind_alerts(cfg: Config) -> list[Blind]:
    """Shipped alerts that can never fire under ``cfg`` (absence alerts aside: see
    :func:`absent_jobs`)."""
    jobs = scraped_roles(cfg)
    out = []
    for rule in _rules():
        if rule["expr"].lstrip().startswith("absent("):
            continue
        why = why_blind(rule["expr"], cfg, jobs)
        if why and all(b.name != rule["alert"] for b in out):
            out.append(Blind(None, rule["alert"], why))
    return out


def absent_jobs(cfg: Config) -> set[str]:
    """Roles whose absence alert would fire for good: they have no scrape target."""
    jobs = scraped_roles(cfg)
    return {job for rule in _rules() if rule["expr"].lstrip().startswith("absent(")
            for job in JOB.findall(rule["expr"]) if job not in jobs}


def panels(board: dict) -> list[dict]:
    out = []
    for panel in board.get("panels", []):
        out += [panel] + list(panel.get("panels", []))  # rows hold their panels
    return [p for p in out if p.get("targets")]


def blind_panels(cfg: Config, boards: dict[str, dict] | None = None) -> list[Blind]:
    """Panels of the shipped boards (board name -> JSON model) that will show no data."""
    if boards is None:
        boards = {p.stem: json.loads(p.read_text())
                  for p in sorted(resources.compose("grafana", "dashboards").glob("*.json"))}
    jobs = scraped_roles(cfg)
    out = []
    for name, board in boards.items():
        for panel in panels(board):
            reasons = [why_blind(t.get("expr", ""), cfg, jobs) for t in panel["targets"]]
            if reasons and all(reasons):
                merged = "; ".join(dict.fromkeys(r for rs in reasons for r in rs.split("; ")))
                out.append(Blind(name, panel.get("title", ""), merged))
    return out
