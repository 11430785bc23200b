"""The policy: which alert runs which action, and every reason not to.

Pure: the clock, the market calendar and the run history are handed in, so a
decision can be replayed and tested at any instant.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Protocol

from pitwatch.core.config import PolicyRule

from pitwatch.remediation.alerts import Alert

# outcome -> the reasons it may carry; the metric labels of docs/metrics.md
ACT, DRY_RUN, SUPPRESSED, IGNORED = "act", "dry_run", "suppressed", "ignored"


class History(Protocol):
    def episode_ran(self, episode: str) -> bool: ...
    def last_run_at(self, rule: str) -> float | None: ...
    def runs_since(self, rule: str, since: float) -> int: ...


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
