"""Drills: a real fault injected into the running demo stack, followed to recovery.

Each drill records a timeline in seconds from the fault — alert pending, firing, mail
received, webhook received, action started and finished, healthy again — from the
components' own records (Prometheus's alerts API, the mail sink's files, the
remediator's journal), and reports MTTR (fault -> healthy) with RTO and RPO where
they apply.
"""
from __future__ import annotations

import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

import requests

from pitwatch.core import backups, config
from pitwatch.core.config import Config
from pitwatch.mailsink import read_mail

PITWATCH = [sys.executable, "-m", "pitwatch"]
EVENTS = ("fault injected", "alert pending", "alert firing", "mail received",
          "webhook received", "action started", "action finished", "healthy again")


class DrillFailed(Exception):
    """The platform did not recover in time; carries the timeline so far."""

    def __init__(self, message: str, report: "Report"):
        super().__init__(message)
        self.report = report


@dataclass
class Report:
    scenario: str
    alerts: tuple[str, ...]  # any of them may detect the fault
    action: str | None
    fault_at: float = 0.0
    events: dict[str, float] = field(default_factory=dict)  # event -> unix time
    seen: dict[str, dict[str, float]] = field(default_factory=dict)  # alert -> pending/firing
    figures: dict[str, float | int | str] = field(default_factory=dict)
    recovered: bool = False
    last_trade_time: float = 0.0  # newest committed trade before the fault (RPO)

    def mark(self, event: str, at: float | None = None) -> None:
        self.events.setdefault(event, time.time() if at is None else at)

    def since_fault(self) -> dict[str, float]:
        seen = sorted((t, EVENTS.index(e), e) for e, t in self.events.items())
        return {e: round(t - self.fault_at, 2) for t, _, e in seen}

    @property
    def alert(self) -> str:
        """The alert followed: the one that triggered the action, else the first seen."""
        if self.figures.get("triggered_by"):
            return str(self.figures["triggered_by"])
        first = sorted(self.seen, key=lambda name: self.seen[name]["pending"])
        return first[0] if first else self.alerts[0]

    @property
    def mttr(self) -> float | None:
        healthy = self.events.get("healthy again")
        return None if healthy is None else round(healthy - self.fault_at, 2)

    def as_dict(self) -> dict:
        return {"scenario": self.scenario, "alert": self.alert, "action": self.action,
                "recovered": self.recovered, "mttr_seconds": self.mttr,
                "timeline_seconds": self.since_fault(), **self.figures}

    def text(self) -> str:
        lines = [f"drill {self.scenario}: {self.alert} -> {self.action or 'mail only'}"]
        for event, seconds in self.since_fault().items():
            lines.append(f"  {seconds:>7.1f}s  {event}")
        expected = EVENTS if self.action else EVENTS[:4]
        for event in expected:
            if event not in self.events:
                lines.append(f"  {'-':>8}  {event} (not seen)")
        if self.mttr is not None:
            lines.append(f"  MTTR {self.mttr:.1f}s")
        elif not self.action and "mail received" in self.events:
            mailed = self.events["mail received"] - self.fault_at
            lines.append(f"  people told after {mailed:.1f}s (no automatic action)")
        for name, value in self.figures.items():
            lines.append(f"  {name}: {value}")
        return "\n".join(lines)


@dataclass
class Platform:
    """What a drill needs to see and touch in a running demo stack."""

    cfg: Config
    root: Path
    prometheus_url: str
    stop_component: Callable[[str], None]  # stops a stack component by name

    def health(self) -> dict | None:
        try:
            r = requests.get(self.cfg.platform.app_url + self.cfg.platform.health_path, timeout=2)
            return r.json() if r.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return None

    def api_ok(self, tries: int = 10) -> bool:
        """``tries`` API calls in a row answered without a server error."""
        url = self.cfg.platform.app_url + "/api/positions"
        try:
            return all(requests.get(url, timeout=2).status_code < 500 for _ in range(tries))
        except requests.RequestException:
            return False

    def query(self, promql: str) -> list[dict]:
        r = requests.get(f"{self.prometheus_url}/api/v1/query", params={"query": promql}, timeout=5)
        r.raise_for_status()
        return r.json()["data"]["result"]

    def alerts(self) -> dict[str, dict]:
        """Active alerts by name (a firing one where there are several)."""
        r = requests.get(f"{self.prometheus_url}/api/v1/alerts", timeout=5)
        r.raise_for_status()
        out: dict[str, dict] = {}
        for a in r.json()["data"]["alerts"]:
            name = a["labels"].get("alertname", "")
            if name not in out or a["state"] == "firing":
                out[name] = a
        return out

    def rule_timing(self, name: str) -> tuple[float, float]:
        """(`for` seconds, evaluation interval seconds) of an alerting rule."""
        r = requests.get(f"{self.prometheus_url}/api/v1/rules", params={"type": "alert"}, timeout=5)
        r.raise_for_status()
        for group in r.json()["data"]["groups"]:
            for rule in group["rules"]:
                if rule["name"] == name:
                    return float(rule.get("duration", 0)), float(group["interval"])
        raise KeyError(f"no alerting rule {name}")

    def journals(self) -> list[Path]:
        """The remediator's journal, and each replica's under `pitwatch demo --ha`."""
        if not self.cfg.remediation:
            return []
        paths = [self.cfg.remediation.journal]
        for replica in sorted(self.root.glob("pitwatch.remediator-*.yml")):
            remediation = config.load(replica).remediation
            if remediation and remediation.journal not in paths:
                paths.append(remediation.journal)
        return paths

    def journal(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Rows of ``sql`` from every journal (read-only)."""
        rows: list[tuple] = []
        for path in self.journals():
            if not path.exists():
                continue
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
            try:
                rows += conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError:
                pass
            finally:
                conn.close()
        return rows

    def trades(self) -> tuple[int, float]:
        """(newest trade id, its time) as committed."""
        conn = sqlite3.connect(f"file:{self.cfg.platform.database}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("select id, executed_at from trades order by id desc limit 1").fetchone()
        finally:
            conn.close()
        return (row[0], row[1]) if row else (0, 0.0)

    def pitwatch(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*PITWATCH, *args, "--config", str(self.cfg.source)],
                              capture_output=True, text=True, timeout=300)


@dataclass
class Scenario:
    name: str
    alerts: tuple[str, ...]  # the alerts that detect this fault
    action: str | None
    limit: float  # seconds from the fault to recovery before the drill fails
    inject: Callable[[Platform, Report], None]
    healthy: Callable[[Platform, Report], bool] | None  # None: people are told, nothing acts
    after: Callable[[Platform, Report], None] = lambda p, r: None
    help: str = ""


# -- scenarios -------------------------------------------------------------------------
GOOD, BAD = "1.4.2", "1.5.0"


def _deploy_bad(p: Platform, r: Report) -> None:
    r.fault_at = time.time()
    # Unwatched: the drill times the alert path, which a deploy's own watch would pre-empt.
    done = p.pitwatch("deploy", BAD, "--force", "--no-snapshot", "--watch", "0")
    if done.returncode != 0:
        raise RuntimeError(f"deploy {BAD} failed: {done.stderr.strip()[-500:]}")


def _good_release_serving(p: Platform, r: Report) -> bool:
    health = p.health()
    return bool(health) and health.get("version") == GOOD and p.api_ok()


def _corrupt_database(p: Platform, r: Report) -> None:
    """Overwrite pages of the live database file, as a failing disk or a stray write would."""
    db = p.cfg.platform.database
    last_id, last_time = p.trades()
    r.figures["trades_before_fault"] = last_id
    r.last_trade_time = last_time
    size = db.stat().st_size
    page = 4096
    pages = size // page
    # Every other page of the middle half: the trades table and its indexes are hit.
    with open(db, "r+b") as fh:
        r.fault_at = time.time()
        for n in range(max(2, pages // 4), max(3, pages * 3 // 4), 2):
            fh.seek(n * page)
            fh.write(os.urandom(page))
        fh.flush()
        os.fsync(fh.fileno())


def _database_restored(p: Platform, r: Report) -> bool:
    if not _finished_ok(p, r):
        return False
    ok, _ = backups.integrity_check(p.cfg.platform.database, "quick_check")
    return ok and bool(p.health()) and p.api_ok()


def _after_restore(p: Platform, r: Report) -> None:
    """RPO in trades, RTO, whether replication was proven, and what else acted."""
    _rpo(p, r)
    output = next((row[0] for row in p.journal(
        "select output from runs where action = 'restore' and queued_at >= ? order by id",
        (r.fault_at,))), "") or ""
    r.figures["replication"] = "proven" if "replication resumed" in output else "not proven"
    # The app answered 500s too (AppHighErrorRate's input); a rollback would not help.
    r.figures["other_actions_since_fault"] = ",".join(sorted({row[0] for row in p.journal(
        "select action from runs where queued_at >= ? and action != ?",
        (r.fault_at, r.action))})) or "none"
    try:
        errors = p.query('sum(increase(pitwatch_app_http_request_total{job="app", '
                         f'status=~"5.."}}[{max(60, int(time.time() - r.fault_at) + 30)}s]))')
        r.figures["app_5xx_after_fault"] = round(float(errors[0]["value"][1])) if errors else 0
    except requests.RequestException:
        pass


def _rpo(p: Platform, r: Report) -> None:
    """Trades committed before the fault that the restored database does not hold."""
    before = int(r.figures["trades_before_fault"])
    last_time = r.last_trade_time
    conn = sqlite3.connect(f"file:{p.cfg.platform.database}?mode=ro", uri=True, timeout=5)
    try:
        kept, newest = conn.execute(
            "select count(*), max(executed_at) from trades where id <= ?", (before,)).fetchone()
        total = conn.execute("select count(*) from trades").fetchone()[0]
    finally:
        conn.close()
    # Trade ids are dense (integer primary key, never deleted): every id up to `before`
    # was committed before the fault.
    r.figures["rpo_trades_lost"] = max(0, before - kept)
    r.figures["rpo_seconds"] = round(max(0.0, last_time - (newest or 0.0)), 2)
    r.figures["trades_after_recovery"] = total
    run = _run(p, r)
    if run and run[2]:
        r.figures["rto_seconds"] = round(run[2] - run[1], 2)


def _kill_app(p: Platform, r: Report) -> None:
    pid = int(p.cfg.platform.app_pid_file.read_text().strip())
    r.figures["killed_pid"] = pid
    r.fault_at = time.time()
    os.kill(pid, signal.SIGKILL)


def _app_back(p: Platform, r: Report) -> bool:
    return _finished_ok(p, r) and bool(p.health()) and p.api_ok()


def _stop_backups(p: Platform, r: Report) -> None:
    r.fault_at = time.time()
    for name in ("litestream", "snapshots"):
        p.stop_component(name)


SCENARIOS = {s.name: s for s in (
    Scenario("bad-release", ("AppHighErrorRate",), "rollback", 180, _deploy_bad,
             _good_release_serving,
             help=f"deploy the faulty release {BAD}: error-rate alert -> mail -> rollback"),
    Scenario("db-corruption", ("AppDatabaseCorruption", "DatabaseIntegrityCheckFailed"), "restore", 240, _corrupt_database,
             _database_restored, after=_after_restore,
             help="overwrite pages of the live database: detection -> mail -> restore; RPO"),
    Scenario("app-down", ("AppDown",), "restart", 180, _kill_app, _app_back,
             help="kill -9 the app: down alert -> mail -> restart"),
    Scenario("stale-backup", ("LitestreamDown", "LitestreamNotSyncing"), None, 420, _stop_backups, None,
             help="stop Litestream and snapshots: sync alert -> mail (no automatic action)"),
)}


# -- following a drill -----------------------------------------------------------------
def _run(p: Platform, r: Report) -> tuple | None:
    """(status, started_at, finished_at, notification received_at, alertname) of the first
    run of the expected action since the fault."""
    rows = p.journal(
        "select runs.status, runs.started_at, runs.finished_at, notifications.received_at, "
        "decisions.alertname, runs.queued_at from runs "
        "join decisions on decisions.id = runs.decision_id "
        "join notifications on notifications.id = decisions.notification_id "
        "where runs.action = ? and runs.queued_at >= ? order by runs.id limit 1",
        (r.action, r.fault_at))
    return min(rows, key=lambda row: row[5])[:5] if rows else None


def _finished_ok(p: Platform, r: Report) -> bool:
    run = _run(p, r)
    return bool(run) and run[0] == "success"


def _observe(p: Platform, r: Report) -> None:
    active = p.alerts()
    for name in r.alerts:
        alert = active.get(name)
        if not alert or not alert.get("activeAt"):
            continue
        seen = r.seen.setdefault(name, {"pending": _rfc3339(alert["activeAt"])})
        if alert["state"] == "firing" and "firing" not in seen:
            # Polling sees firing late; it happened at the first evaluation `for` after
            # the pending one.
            hold, interval = p.rule_timing(name)
            seen["firing"] = min(time.time(), seen["pending"] + math.ceil(hold / interval) * interval)
    run = _run(p, r) if r.action else None
    if run:
        # The notification and alert that led to the run, whichever alert came first.
        r.mark("webhook received", run[3])
        r.figures["triggered_by"] = run[4]
        if run[1]:
            r.mark("action started", run[1])
        if run[2]:
            r.mark("action finished", run[2])
            r.figures["action_result"] = run[0]
    followed = r.seen.get(r.alert, {})
    for event, key in (("alert pending", "pending"), ("alert firing", "firing")):
        if key in followed:
            r.events[event] = followed[key]
    if "mail received" not in r.events:
        for arrived, msg in read_mail(p.root / "mail"):
            if arrived >= r.fault_at and r.alert in str(msg["Subject"]):
                r.mark("mail received", arrived)
                r.figures["mail_subject"] = str(msg["Subject"])
                break


def _rfc3339(text: str) -> float:
    """Prometheus's activeAt (nanosecond fraction, Z) as unix time."""
    whole, frac, zone = re.fullmatch(r"([^.]+?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text).groups()
    zone = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(whole + zone).timestamp() + float(f"0.{frac or 0}")


def warm_up(p: Platform, scenario: Scenario, timeout: float = 180, echo=print) -> None:
    """Wait until Prometheus has enough history for rate windows and nothing is firing."""
    deadline = time.time() + timeout
    echo("warming up: waiting for scrapes, rate windows and a quiet alert")
    while time.time() < deadline:
        try:
            rates = p.query('sum(rate(pitwatch_app_http_request_total{job="app"}[30s])) > 0')
            up = p.query('min(up{job=~"app|exporter|remediator"})')
            # A fault needs the previous episode gone and a full window of healthy traffic.
            quiet = not set(scenario.alerts) & set(p.alerts())
            synced = scenario.name != "db-corruption" or p.query(
                "time() - pitwatch_backup_litestream_last_replica_write_timestamp_seconds < 10")
        except requests.RequestException:
            rates, up, quiet, synced = [], [], False, False
        if rates and up and float(up[0]["value"][1]) == 1 and quiet and synced and _healthy_now(p):
            return
        time.sleep(1)
    raise TimeoutError("the stack did not warm up: see the logs in the demo folder")


def _healthy_now(p: Platform) -> bool:
    return bool(p.health()) and p.api_ok(3)


def run(scenario: Scenario, p: Platform, echo=print, poll: float = 0.5) -> Report:
    report = Report(scenario.name, scenario.alerts, scenario.action)
    scenario.inject(p, report)
    report.mark("fault injected", report.fault_at)
    echo(f"fault injected: {scenario.help}")
    deadline = report.fault_at + scenario.limit
    while time.time() < deadline:
        _observe(p, report)
        if scenario.healthy and "healthy again" not in report.events and scenario.healthy(p, report):
            report.mark("healthy again")
        needed = ("mail received",) + (("action finished", "healthy again") if scenario.action else ())
        if all(event in report.events for event in needed):
            report.recovered = True
            scenario.after(p, report)
            return report
        time.sleep(poll)
    raise DrillFailed(f"{scenario.name}: not recovered within {scenario.limit:.0f}s", report)


def prometheus_url(root: Path) -> str:
    ports = json.loads((root / "stack" / "ports.json").read_text())
    return f"http://127.0.0.1:{ports['prometheus']}"
