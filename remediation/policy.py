"""The policy: which alert runs which action, and every reason not to.

Pure: the clock, the market calendar and the run history are handed in, so a
decision can be replayed and tested at any instant.

What is firing (for ``blocked_by``) is what this receiver has been told: the latest
notification per alert fingerprint, its own notification's alerts included (the engine
records them before judging any). An alert counts as firing while that latest word is
"firing", for at most :data:`FIRING_TTL` after it arrived. Alertmanager sends a firing
alert with a zero ``endsAt`` and re-sends it every ``repeat_interval`` (1h on the
remediator route) while it fires, and sends "resolved" when it ends; the bound only
matters when that resolved notice never arrives. A real ``endsAt`` on a firing alert
(another sender) ends it earlier.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Protocol

from pitwatch.core.config import PolicyRule
from pitwatch.core.times import parse_time

from pitwatch.remediation.alerts import Alert

# outcome -> the reasons it may carry; the metric labels of docs/metrics.md
ACT, DRY_RUN, SUPPRESSED, IGNORED = "act", "dry_run", "suppressed", "ignored"
# Longer than the remediator route's repeat_interval (1h) plus its group_interval, so a
# fault that keeps firing keeps its block between re-sends; a lost "resolved" blocks for
# no longer than this.
FIRING_TTL = 75 * 60.0


class History(Protocol):
    def episode_ran(self, episode: str) -> bool: ...
    def last_run_at(self, rule: str) -> float | None: ...
    def runs_since(self, rule: str, since: float) -> int: ...
    def firing(self, now: float) -> dict[str, dict[str, str]]: ...  # fingerprint -> labels


@dataclass(frozen=True)
class Verdict:
    outcome: str  # act | dry_run | suppressed | ignored
    reason: str
    rule: PolicyRule | None = None

    @property
    def acts(self) -> bool:
        return self.outcome == ACT


def episode_key(rule: str, alert: Alert) -> str:
    """An episode: one rule, one alert series, one start. Re-sends share it."""
    return f"{rule}|{alert.fingerprint}|{alert.starts_at}"


def firing_until(alert: Alert, received: float) -> float | None:
    """Until when ``alert`` counts as firing, as told at ``received``; None: it does not."""
    if alert.status != "firing":
        return None
    until = received + FIRING_TTL
    try:
        ends = parse_time(alert.ends_at).timestamp() if alert.ends_at else None
    except ValueError:
        ends = None
    if ends is not None and ends > 0:  # Alertmanager's "0001-01-01T00:00:00Z": no estimate
        until = min(until, ends)
    return until


def blocked(rule: PolicyRule, alert: Alert, firing: dict[str, dict[str, str]]) -> bool:
    """An alert other than this one fires with every label of one of ``rule.blocked_by``."""
    return any(all(labels.get(k) == v for k, v in wanted.items())
               for fp, labels in firing.items() if fp != alert.fingerprint
               for wanted in rule.blocked_by)


def matches(rule: PolicyRule, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in rule.match.items()):
        return False
    return all(re.fullmatch(p, labels.get(k, "")) for k, p in rule.match_re.items())


class Policy:
    def __init__(self, rules: list[PolicyRule], market_open: Callable[[datetime], bool]):
        self.rules = list(rules)
        self.market_open = market_open

    def rule_for(self, alert: Alert) -> PolicyRule | None:
        """The first matching rule wins."""
        return next((r for r in self.rules if matches(r, alert.labels)), None)

    def judge(self, alert: Alert, now: float, history: History) -> Verdict:
        rule = self.rule_for(alert)
        if rule is None:
            return Verdict(IGNORED, "no_rule")
        if alert.status != "firing":
            # Recorded, never acted on: a resolved alert does not stop a running action.
            return Verdict(IGNORED, "resolved", rule)
        if history.episode_ran(episode_key(rule.name, alert)):
            return Verdict(SUPPRESSED, "duplicate", rule)
        # Not journalled as a run: the episode stays open, and a re-send after the
        # blocking alert resolves is judged afresh.
        if rule.blocked_by and blocked(rule, alert, history.firing(now)):
            return Verdict(SUPPRESSED, "blocked_by", rule)
        if rule.dry_run:
            return Verdict(DRY_RUN, "dry_run", rule)
        if rule.market_hours != "allow" and self.market_open(datetime.fromtimestamp(now, timezone.utc)):
            if rule.market_hours == "deny":
                return Verdict(SUPPRESSED, "market_hours", rule)
            return Verdict(DRY_RUN, "market_hours", rule)
        last = history.last_run_at(rule.name)
        if last is not None and now - last < rule.cooldown:
            return Verdict(SUPPRESSED, "cooldown", rule)
        if history.runs_since(rule.name, now - rule.window) >= rule.max_runs:
            return Verdict(SUPPRESSED, "max_runs", rule)
        return Verdict(ACT, "policy", rule)
