"""Reading the journal back: what ran, why, and what was held back.

One query for everyone who asks: ``GET /actions``, the status page and ``pitwatch
actions`` (which reads the journal file itself or the remediator's ``/actions``).
Entries are of two kinds, newest first:

- a **run**: its trigger (the alert it was started for), rule, result, timing, the tail
  of its output and what the output says (:mod:`remediation.summary`);
- a **decision** that did not act: dry run or suppressed, with its reason (cooldown,
  max_runs, market_hours, dry_run, locked, duplicate, blocked_by, redis_unavailable).
  Ignored decisions (no rule matched, a resolved alert) only when asked for.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Protocol

from pitwatch.core.config import parse_duration
from pitwatch.core.times import parse_time, rfc3339

from pitwatch.remediation.journal import JournalReader
from pitwatch.remediation.summary import summarise

OUTPUT_TAIL = 4096  # characters of output an entry carries
OPEN = ("queued", "running")
RUN_STATUSES = ("success", "degraded", "failure", "timeout", "interrupted", "skipped", *OPEN)


class Reader(Protocol):
    def read(self, sql: str, args: tuple = ()) -> list[dict]: ...


@dataclass(frozen=True)
class Query:
    since: float | None = None  # unix seconds
    rule: str | None = None
    # an outcome (act, dry_run, suppressed, ignored), a run's result (success, failure,
    # degraded, timeout, interrupted, skipped, queued, running) or a reason (cooldown, ...)
    outcome: str | None = None
    limit: int = 50

    def params(self) -> dict[str, str]:
        """As ``GET /actions`` takes them."""
        return {k: str(v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_params(cls, params: dict[str, str]) -> "Query":
        """From ``GET /actions``'s query string; ValueError names the parameter."""
        def number(name: str, cast):
            try:
                return cast(params[name]) if params.get(name) not in (None, "") else None
            except ValueError:
                raise ValueError(name) from None

        limit = number("limit", int)
        return cls(since=number("since", float), rule=params.get("rule") or None,
                   outcome=params.get("outcome") or None,
                   limit=max(1, min(limit if limit is not None else 50, 500)))


def _trigger(alert: dict) -> dict:
    labels = alert.get("labels") or {}
    return {"alertname": labels.get("alertname", ""), "labels": labels,
            "starts_at": alert.get("startsAt", ""), "fingerprint": alert.get("fingerprint", ""),
            "status": alert.get("status", "")}


def _run(row: dict) -> dict:
    output = row.pop("output") or ""
    alert = json.loads(row.pop("alert") or "{}")
    start, end = row["started_at"], row["finished_at"]
    return {"kind": "run", "at": row["queued_at"], **row, "outcome": "act",
            "duration": round(end - start, 3) if start is not None and end is not None else None,
            "trigger": _trigger(alert), "summary": summarise(row["action"], row["status"], output),
            "output": output[-OUTPUT_TAIL:], "output_truncated": len(output) > OUTPUT_TAIL}


def _decision(row: dict) -> dict:
    labels = json.loads(row.pop("labels") or "{}")
    return {"kind": "decision", "at": row["decided_at"], **row,
            "trigger": {"alertname": row["alertname"], "labels": labels,
                        "starts_at": row["starts_at"], "fingerprint": row["fingerprint"],
                        "status": row["alert_status"]}}


_RUNS = ("select r.id, r.decision_id, r.episode, r.rule, r.action, r.target, r.status, "
         "r.queued_at, r.started_at, r.finished_at, r.exit_code, r.fencing_token, r.owner, "
         "r.alert, r.output from runs r where 1=1")
# The alert's labels are in the notification body it came with (kept while its decision is).
_DECISIONS = ("select d.id, d.notification_id, d.decided_at, d.alertname, d.alert_status, "
              "d.fingerprint, d.starts_at, d.rule, d.action, d.target, d.outcome, d.reason, "
              "json_extract(n.body, '$.alerts[' || d.alert_index || '].labels') as labels "
              "from decisions d left join notifications n on n.id = d.notification_id "
              "where d.outcome != 'act'")


def runs(reader: Reader, q: Query) -> list[dict]:
    if q.outcome not in (None, "act", *RUN_STATUSES):
        return []
    sql, args = _RUNS, []
    if q.since is not None:
        sql, args = sql + " and r.queued_at >= ?", [*args, q.since]
    if q.rule:
        sql, args = sql + " and r.rule = ?", [*args, q.rule]
    if q.outcome not in (None, "act"):
        sql, args = sql + " and r.status = ?", [*args, q.outcome]
    rows = reader.read(sql + " order by r.id desc limit ?", (*args, q.limit))
    return [_run(r) for r in rows]


def decisions(reader: Reader, q: Query) -> list[dict]:
    if q.outcome == "act":
        return []
    sql, args = _DECISIONS, []
    if q.outcome is None:
        sql += " and d.outcome != 'ignored'"
    else:
        sql, args = sql + " and (d.outcome = ? or d.reason = ?)", [q.outcome, q.outcome]
    if q.since is not None:
        sql, args = sql + " and d.decided_at >= ?", [*args, q.since]
    if q.rule:
        sql, args = sql + " and d.rule = ?", [*args, q.rule]
    rows = reader.read(sql + " order by d.id desc limit ?", (*args, q.limit))
    return [_decision(r) for r in rows]


def query(reader: Reader, q: Query) -> dict:
    """``{"runs": [...], "decisions": [...]}``, each newest first: ``GET /actions``."""
    return {"runs": runs(reader, q), "decisions": decisions(reader, q)}


def timeline(doc: dict, limit: int | None = None) -> list[dict]:
    """Runs and decisions of a :func:`query` answer in one list, newest first."""
    out = sorted([*doc.get("runs", []), *doc.get("decisions", [])],
                 key=lambda e: (e["at"], e["kind"] == "run", e["id"]), reverse=True)
    return out[:limit] if limit else out


# -- rules: cooldowns and max_runs as the journal sees them ----------------------------

def rule_states(reader: Reader, rules: list, now: float) -> list[dict]:
    """Per policy rule: its last run and from when it may act again (cooldown, max_runs)."""
    out = []
    for rule in rules:
        times = [r["queued_at"] for r in reader.read(
            "select queued_at from runs where rule = ? and queued_at >= ? order by queued_at desc",
            (rule.name, now - max(rule.cooldown, rule.window)))]
        last = reader.read("select max(queued_at) as t from runs where rule = ?", (rule.name,))[0]["t"]
        in_window = [t for t in times if t >= now - rule.window]
        free_at, why = now, ""
        if last is not None and last + rule.cooldown > free_at:
            free_at, why = last + rule.cooldown, "cooldown"
        if len(in_window) >= rule.max_runs:
            # The oldest run that keeps the count at max_runs has to leave the window.
            until = in_window[rule.max_runs - 1] + rule.window
            if until > free_at:
                free_at, why = until, "max_runs"
        out.append({"rule": rule.name, "action": rule.action, "target": rule.target,
                    "last_run": last, "cooldown": rule.cooldown, "window": rule.window,
                    "max_runs": rule.max_runs, "runs_in_window": len(in_window),
                    "may_act_at": free_at if why else None, "held_by": why or None,
                    "dry_run": rule.dry_run, "market_hours": rule.market_hours})
    return out


def run(reader: Reader, run_id: int) -> dict | None:
    rows = reader.read(_RUNS + " and r.id = ?", (run_id,))
    return _run(rows[0]) if rows else None


def last_runs_by_result(reader: Reader) -> list[dict]:
    """The newest finished run of each (action, result): what the run-info metric shows."""
    rows = reader.read(_RUNS + " and r.id in (select max(id) from runs where status not in "
                       "('queued', 'running') group by action, status)")
    return [_run(r) for r in rows]


# -- where to read: the journal file, or a remediator's GET /actions --------------------

def since(value: str, now: float) -> float:
    """``2h``, ``30m``, ``90s`` (that long ago) or an RFC 3339 time -> unix seconds."""
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        return parse_time(value.replace(" ", "T")).timestamp()
    except ValueError:
        raise ValueError(f"{value!r}: expected a duration (2h, 30m) or an RFC 3339 time") from None


def source(rem, url: str | None = None, token_file=None) -> Callable[[Query], dict]:
    """A function answering a :class:`Query`: from ``url``'s ``/actions`` with the read
    token (``token_file``, else remediation.read_token_file, else token_file), or from
    the journal file of ``rem`` (read-only, beside a running receiver)."""
    if url:
        path = token_file or rem.read_token_file or rem.token_file
        token = None
        if path is not None:
            try:
                token = open(path).read().strip()
            except OSError as exc:
                raise RemoteUnavailable(f"cannot read the token {path}: {exc.strerror}") from None
        return lambda q: fetch_remote(url, token, q)
    reader = JournalReader(rem.journal)
    return lambda q: query(reader, q)


# -- remote: the same query through GET /actions ----------------------------------------

class RemoteUnavailable(Exception):
    pass


def fetch_remote(url: str, token: str | None, q: Query, timeout: float = 30.0) -> dict:
    """``GET URL/actions`` with the bearer token: the same answer as :func:`query`."""
    full = url.rstrip("/") + "/actions?" + urllib.parse.urlencode(q.params())
    req = urllib.request.Request(full, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            why = json.load(exc).get("error", exc.reason)
        except ValueError:
            why = exc.reason
        raise RemoteUnavailable(f"{url}: {exc.code} {why}") from None
    except (OSError, ValueError) as exc:
        raise RemoteUnavailable(f"{url}: {exc}") from None


def follow(fetch: Callable[[Query], dict], q: Query, interval: float = 2.0,
           sleep: Callable[[float], None] = time.sleep) -> Iterator[dict]:
    """Entries as they appear, oldest first; a run again each time its status changes."""
    seen: set[tuple] = set()
    while True:
        for entry in reversed(timeline(fetch(q))):
            key = (entry["kind"], entry["id"], entry.get("status"))
            if key not in seen:
                seen.add(key)
                yield entry
        sleep(interval)


# -- text -------------------------------------------------------------------------------

def _when(unix: float | None) -> str:
    return rfc3339(unix) if unix is not None else "-"


def _labels(labels: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")


def lines(entry: dict, output_lines: int = 5) -> list[str]:
    """An entry as a person reads it in a terminal."""
    t = entry["trigger"]
    trigger = (f"{t['alertname'] or '-'} {{{_labels(t['labels'])}}} started {t['starts_at']}")
    if entry["kind"] == "decision":
        what = f"{entry['outcome']} ({entry['reason']})"
        return [f"{_when(entry['at'])}  decision {entry['id']}  rule {entry['rule'] or '-'}: {what}",
                f"    trigger: {trigger}"]
    s = entry["summary"]
    took = f" in {entry['duration']:.1f}s" if entry["duration"] is not None else ""
    out = [f"{_when(entry['at'])}  run {entry['id']}  rule {entry['rule']}: {entry['action']} "
           f"-> {entry['status']}{took}",
           f"    trigger: {trigger}"]
    changed = []
    if "from_version" in s or "to_version" in s:
        changed.append(f"release {s.get('from_version', '?')} -> {s.get('to_version', '?')}")
    if "backup" in s:
        changed.append(f"restored from {s['backup']}")
    for key, label in (("rto", "RTO"), ("rpo", "RPO"), ("replication", "replication")):
        if key in s:
            changed.append(f"{label} {s[key]}")
    if changed:
        out.append("    changed: " + "; ".join(changed))
    out.append(f"    verdict: {s['verdict']}")
    tail = [line for line in entry["output"].splitlines() if line.strip()][-output_lines:]
    out += [f"    | {line}" for line in tail]
    return out
