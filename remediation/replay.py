"""What the receiver would decide for a saved notification, without acting.

The journal's history (opened read-only) feeds the guards, so a replay answers as the
running receiver would; with no journal yet, nothing has run. As in the receiver, the
notification's own alerts count as firing (or resolved) beside what the journal knows.
"""
from __future__ import annotations

import sqlite3

from pitwatch.core import market
from pitwatch.core.config import Config
from pitwatch.remediation.actions import argv_for
from pitwatch.remediation.alerts import Notification
from pitwatch.remediation.journal import Tx
from pitwatch.remediation.policy import Policy, firing_until


class NoHistory:
    def episode_ran(self, episode): return False
    def last_run_at(self, rule): return None
    def runs_since(self, rule, since): return 0
    def firing(self, now): return {}


class WithNotification:
    """A history with the notification's alerts noted, as the engine notes them first."""

    def __init__(self, history, notification: Notification, now: float):
        self.history = history
        self.noted = {a.fingerprint: (a.labels, firing_until(a, now)) for a in notification.alerts}

    def episode_ran(self, episode): return self.history.episode_ran(episode)
    def last_run_at(self, rule): return self.history.last_run_at(rule)
    def runs_since(self, rule, since): return self.history.runs_since(rule, since)

    def firing(self, now):
        out = {fp: labels for fp, labels in self.history.firing(now).items()
               if fp not in self.noted}
        out.update({fp: labels for fp, (labels, until) in self.noted.items()
                    if until is not None and until > now})
        return out


def replay(cfg: Config, notification: Notification, now: float) -> list[dict]:
    """One row per alert: its rule, outcome, reason and the argv it would run."""
    rem = cfg.remediation
    history = NoHistory()
    if rem.journal.exists():
        history = Tx(sqlite3.connect(f"file:{rem.journal}?mode=ro", uri=True))
    history = WithNotification(history, notification, now)
    policy = Policy(rem.policy, market.is_open)
    out = []
    for i, alert in enumerate(notification.alerts):
        v = policy.judge(alert, now, history)
        row = {"alert": i, "alertname": alert.alertname, "status": alert.status,
               "fingerprint": alert.fingerprint, "rule": v.rule.name if v.rule else None,
               "outcome": v.outcome, "reason": v.reason}
        if v.rule is not None:
            row["argv"] = argv_for(v.rule.action, cfg)
        out.append(row)
    return out
