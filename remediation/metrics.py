"""The receiver's own metrics (docs/metrics.md, job `remediator`), in their own registry."""
from __future__ import annotations

import threading
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OUTCOMES = ("act", "dry_run", "suppressed", "ignored")
REASONS = ("duplicate", "blocked_by", "cooldown", "max_runs", "market_hours", "locked",
           "redis_unavailable")
RESULTS = ("success", "degraded", "failure", "timeout", "interrupted")
# What the last run of each action and result was, for the mail (alerts/rules/remediation.yml
# joins these labels in). Facts only, each one line: the output itself stays on the status page.
RUN_INFO = ("rule", "run", "trigger", "from_version", "to_version", "backup", "rto", "rpo",
            "replication", "verdict")


class Metrics:
    def __init__(self, actions: list[str]):
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.notifications = Counter(
            "pitwatch_remediation_notifications_received", "Alertmanager notifications accepted "
            "(persisted to the journal).", registry=r)
        self.decisions = Counter(
            "pitwatch_remediation_decisions", "Decisions taken, one per alert of a notification.",
            ["outcome"], registry=r)
        self.suppressions = Counter(
            "pitwatch_remediation_suppressions", "Actions not run although a rule matched, by "
            "reason.", ["reason"], registry=r)
        self.actions = Counter(
            "pitwatch_remediation_actions", "Finished action runs by result.",
            ["action", "result"], registry=r)
        self.duration = Histogram(
            "pitwatch_remediation_action_duration_seconds", "Wall time of action runs.",
            ["action"], buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800), registry=r)
        self.last_action = Gauge(
            "pitwatch_remediation_last_action_timestamp_seconds", "When an action last finished.",
            ["action"], registry=r)
        self.running = Gauge(
            "pitwatch_remediation_actions_running", "Action runs in progress.", registry=r)
        self.run_info = Gauge(
            "pitwatch_remediation_last_run_info", "The newest finished run of each action and "
            "result (always 1): its rule, run id, trigger alert and what its output says.",
            ["action", "result", *RUN_INFO], registry=r)
        self._run_info: dict[tuple[str, str], tuple[str, ...]] = {}
        self._run_info_lock = threading.Lock()
        # Zero series exist from the start, so rate() and absent() behave.
        for o in OUTCOMES:
            self.decisions.labels(o)
        for reason in REASONS:
            self.suppressions.labels(reason)
        for a in actions:
            for res in RESULTS:
                self.actions.labels(a, res)

    def record_run(self, entry: dict) -> None:
        """``entry`` is a run as :mod:`remediation.history` reads it; it replaces the
        series of the previous run of the same action and result."""
        facts = {**entry["summary"], "rule": entry["rule"], "run": str(entry["id"]),
                 "trigger": entry["trigger"]["alertname"]}
        values = (entry["action"], entry["status"], *(facts.get(k, "") for k in RUN_INFO))
        with self._run_info_lock:
            old = self._run_info.get(values[:2])
            if old is not None and old != values:
                self.run_info.remove(*old)
            self._run_info[values[:2]] = values
            self.run_info.labels(*values).set(1)

    def watch_redis(self, up: Callable[[], bool]) -> None:
        """``pitwatch_remediation_redis_up``, asked at each scrape; only with shared claims."""
        Gauge("pitwatch_remediation_redis_up", "1 if the Redis holding the episode claims and "
              "target locks answers, else 0 (no action runs while 0).",
              registry=self.registry).set_function(lambda: 1.0 if up() else 0.0)
