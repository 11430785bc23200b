"""The remediator's status page (``GET /``): one server-rendered HTML page, no script.

What a person asks at 3 a.m.: what fired, what ran and what it changed (with the
output), what was held back and why, which rules are cooling down and until when, is
the market open and when does that change, and can the receiver act at all (claims,
Redis). Everything that came from an alert or an action's output is HTML-escaped;
the page sends a Content-Security-Policy that allows no script at all.
"""
from __future__ import annotations

import html
import time
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

from pitwatch.core.times import rfc3339

from pitwatch.remediation import history
from pitwatch.remediation.claims import ClaimsUnavailable

EPISODES = 20  # episodes shown, newest activity first
HELD = 50  # decisions that did not act, shown
REFRESH = 30  # seconds between reloads (a meta refresh: no script)
MARKET_STEP = 300.0  # the calendar is probed in steps this long, then to the second
MARKET_HORIZON = 8 * 86400.0  # longer than any weekend or holiday gap
HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
                                "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
]


def e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _when(unix: float | None) -> str:
    return rfc3339(unix) if unix is not None else "never"


def _ago(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def next_market_change(market_open: Callable[[datetime], bool], now: float) -> tuple[bool, float | None]:
    """(open now, when that changes): the calendar probed every 5 minutes, then bisected."""
    def is_open(t: float) -> bool:
        return market_open(datetime.fromtimestamp(t, timezone.utc))

    state = is_open(now)
    lo = now
    while lo - now < MARKET_HORIZON:
        hi = lo + MARKET_STEP
        if is_open(hi) != state:
            while hi - lo > 1:
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if is_open(mid) == state else (lo, mid)
            return state, float(int(hi))
        lo = hi
    return state, None


def redact(url: str) -> str:
    """A Redis URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def gather(engine, now: float | None = None) -> dict:
    """Everything the page shows, read from the engine and its journal."""
    now = time.time() if now is None else now
    rem = engine.cfg.remediation
    journal = engine.journal
    runs = history.runs(journal, history.Query(limit=EPISODES * 3))
    held = history.decisions(journal, history.Query(limit=HELD))
    episodes: dict[str, dict] = {}
    for run in runs:
        episodes.setdefault(run["episode"], {"trigger": run["trigger"], "rule": run["rule"],
                                             "runs": [], "decisions": []})["runs"].append(run)
    for d in held:
        key = f"{d['rule']}|{d['fingerprint']}|{d['starts_at']}"
        ep = episodes.get(key)
        if ep is None and len(episodes) < EPISODES * 3:
            ep = episodes.setdefault(key, {"trigger": d["trigger"], "rule": d["rule"],
                                           "runs": [], "decisions": []})
        if ep is not None:
            ep["decisions"].append(d)
    for key, ep in episodes.items():
        ep["key"] = key
        ep["last"] = max([r["at"] for r in ep["runs"]] + [d["at"] for d in ep["decisions"]])
    ordered = sorted(episodes.values(), key=lambda ep: ep["last"], reverse=True)[:EPISODES]
    is_open, change = next_market_change(engine.policy.market_open, now)
    claims_error = engine.claims_error()
    targets = []
    for target in sorted({r.target for r in rem.policy}):
        running = [r for r in runs if r["target"] == target and r["status"] in history.OPEN]
        locked: bool | None = bool(running)
        if rem.redis_url:  # another replica's lock; the local lock is this journal's runs
            try:
                locked = engine.claims.target_busy(target)
            except ClaimsUnavailable:
                locked = None
        targets.append({"target": target, "locked": locked, "runs": running})
    return {
        "now": now, "node": journal.node, "owner": engine.owner,
        "market": {"open": is_open, "next_change": change},
        "claims": {"kind": "redis" if rem.redis_url else "local",
                   "where": redact(rem.redis_url) if rem.redis_url else str(rem.journal.parent / "locks"),
                   "error": claims_error},
        "targets": targets,
        "rules": history.rule_states(journal, rem.policy, now),
        "episodes": ordered,
        "held": [d for d in held if d["outcome"] != "dry_run"],
        "dry_run": [d for d in held if d["outcome"] == "dry_run"],
    }


# -- HTML -------------------------------------------------------------------------------

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em;color:#1d1d1d;max-width:72em}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.6em 0 .4em;border-bottom:1px solid #ccc}
h3{font-size:1em;margin:1em 0 .3em}table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.25em .6em .25em 0;vertical-align:top;border-bottom:1px solid #eee}
pre{background:#f5f5f5;padding:.6em;overflow-x:auto;white-space:pre-wrap;max-height:24em}
.ok{color:#186a2e}.bad{color:#a31515;font-weight:600}.warn{color:#8a5a00}.muted{color:#666}
article{border-left:3px solid #ccc;padding-left:.8em;margin:1em 0}code{font-size:.95em}
"""
GOOD = {"success"}
BAD = {"failure", "timeout", "interrupted", "degraded"}


def _cls(status: str) -> str:
    return "ok" if status in GOOD else "bad" if status in BAD else "warn"


def _labels(labels: dict) -> str:
    return " ".join(f"<code>{e(k)}={e(v)}</code>" for k, v in sorted(labels.items())
                    if k != "alertname")


def _trigger(t: dict) -> str:
    return (f"<strong>{e(t['alertname'] or '(no alertname)')}</strong> {_labels(t['labels'])} "
            f"<span class=muted>started {e(t['starts_at'])}</span>")


def _run(run: dict) -> str:
    s = run["summary"]
    facts = []
    if "from_version" in s or "to_version" in s:
        facts.append(f"release <strong>{e(s.get('from_version', '?'))} &rarr; "
                     f"{e(s.get('to_version', '?'))}</strong>")
    if "backup" in s:
        facts.append(f"restored from <code>{e(s['backup'])}</code>")
    for key, label in (("rto", "RTO"), ("rpo", "RPO"), ("replication", "replication")):
        if key in s:
            facts.append(f"{label} {e(s[key])}")
    took = f" in {run['duration']:.1f}s" if run["duration"] is not None else ""
    cut = " (the last part)" if run["output_truncated"] else ""
    return (f'<div id="run-{e(run["id"])}"><h3>run {e(run["id"])}: {e(run["action"])} '
            f'&rarr; <span class="{_cls(run["status"])}">{e(run["status"])}</span>{e(took)}</h3>'
            f"<p>queued {e(_when(run['queued_at']))}, exit {e(run['exit_code'])}, "
            f"fencing token {e(run['fencing_token'])}, on {e(run['owner'])}</p>"
            + (f"<p>{'; '.join(facts)}</p>" if facts else "")
            + f"<p>verdict: <strong>{e(s['verdict'])}</strong></p>"
            f"<details open><summary>output{cut}</summary><pre>{e(run['output'])}</pre></details></div>")


def _decision_row(d: dict) -> str:
    return (f"<tr><td>{e(_when(d['at']))}</td><td>{_trigger(d['trigger'])}</td>"
            f"<td>{e(d['rule'])}</td><td class=warn>{e(d['outcome'])}</td>"
            f"<td><strong>{e(d['reason'])}</strong></td></tr>")


def _decisions(rows: list[dict], empty: str) -> str:
    if not rows:
        return f"<p class=muted>{e(empty)}</p>"
    return ("<table><tr><th>decided</th><th>alert</th><th>rule</th><th>outcome</th>"
            "<th>reason</th></tr>" + "".join(_decision_row(d) for d in rows) + "</table>")


def render(state: dict) -> str:
    now = state["now"]
    m = state["market"]
    change = (f"{'closes' if m['open'] else 'opens'} at {_when(m['next_change'])} "
              f"(in {_ago(m['next_change'] - now)})" if m["next_change"] else "no change within 8 days")
    c = state["claims"]
    claims = (f"<span class=bad>{e(c['error'])}</span>: nothing acts until it answers"
              if c["error"] else "<span class=ok>answering</span>")
    targets = "".join(
        f"<li><code>{e(t['target'])}</code>: "
        + ("<span class=warn>locked</span>" if t["locked"] else "<span class=ok>free</span>"
           if t["locked"] is False else "<span class=bad>unknown</span>")
        + "".join(f" &middot; run {e(r['id'])} {e(r['status'])}" for r in t["runs"]) + "</li>"
        for t in state["targets"])
    rules = "".join(
        f"<tr><td><code>{e(r['rule'])}</code></td><td>{e(r['action'])}</td>"
        f"<td>{e(_when(r['last_run']))}</td><td>{e(_ago(r['cooldown']))}</td>"
        f"<td>{e(r['runs_in_window'])} of {e(r['max_runs'])} in {e(_ago(r['window']))}</td>"
        + (f"<td class=warn>{e(r['held_by'])} until {e(_when(r['may_act_at']))} "
           f"(in {e(_ago(r['may_act_at'] - now))})</td>" if r["held_by"] else "<td class=ok>now</td>")
        + f"<td>{'dry run' if r['dry_run'] else 'live'}, market hours {e(r['market_hours'])}</td></tr>"
        for r in state["rules"])
    episodes = "".join(
        f'<article id="episode-{i}"><h3>{_trigger(ep["trigger"])} &middot; rule '
        f"<code>{e(ep['rule'])}</code></h3>"
        + "".join(_run(r) for r in ep["runs"])
        + (_decisions(ep["decisions"], "") if ep["decisions"] else "")
        + "</article>"
        for i, ep in enumerate(state["episodes"]))
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><meta http-equiv=refresh content="{REFRESH}">
<meta name=viewport content="width=device-width, initial-scale=1">
<title>pitwatch remediator</title><style>{STYLE}</style></head><body>
<h1>pitwatch remediator</h1>
<p class=muted>{e(state['owner'])}, journal node {e(state['node'])}, as of {e(_when(now))};
reloads every {REFRESH}s. Command line: <code>pitwatch actions</code>.</p>
<h2 id=state>Can it act?</h2>
<ul>
<li>Market (CME Globex): <strong>{'open' if m['open'] else 'closed'}</strong>, {e(change)}</li>
<li>Claims: {e(c['kind'])} (<code>{e(c['where'])}</code>): {claims}</li>
{targets}
</ul>
<h2 id=rules>Rules: cooldowns and limits</h2>
<table><tr><th>rule</th><th>action</th><th>last run</th><th>cooldown</th><th>max runs</th>
<th>may act</th><th>mode</th></tr>{rules}</table>
<h2 id=episodes>Recent episodes</h2>
{episodes or '<p class=muted>No episode yet: no alert has matched a rule.</p>'}
<h2 id=held>Held back</h2>
{_decisions(state['held'], 'Nothing held back.')}
<h2 id=dry-run>Dry runs</h2>
{_decisions(state['dry_run'], 'No dry-run decision.')}
</body></html>
"""


def login_page() -> str:
    """The answer without a token: how to open the page, and nothing else."""
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><title>pitwatch remediator</title>
<style>{STYLE}</style></head><body><h1>pitwatch remediator</h1>
<p>This page needs the remediator's read token (<code>remediation.read_token_file</code>,
or the webhook token). Open <code>/?token=TOKEN</code> once: the remediator answers with a
cookie (HttpOnly, SameSite=Strict) and sends you on to <code>/</code>, so the token does
not stay in the address bar or the history.</p></body></html>
"""
