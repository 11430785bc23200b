"""Accepting a notification (journal first) and running what the policy decided.

:meth:`Engine.accept` judges each alert alone and commits the notification, its
decisions and the queued runs in one transaction; only then may the receiver answer.
:meth:`Engine.dispatch` hands the queued runs to a bounded thread pool.
"""
from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pitwatch import market
from pitwatch.config import Config, PolicyRule

from remediation import runner
from remediation.actions import argv_for
from remediation.alerts import Notification
from remediation.claims import ClaimsUnavailable, LocalClaims, RedisClaims
from remediation.journal import Journal
from remediation.metrics import Metrics
from remediation.policy import ACT, SUPPRESSED, Policy, episode_key

log = logging.getLogger("pitwatch.remediator")


class JournalInUse(Exception):
    pass


@dataclass(frozen=True)
class QueuedRun:
    run_id: int
    rule: PolicyRule
    argv: list[str]
    alert: dict


class Engine:
    def __init__(self, cfg: Config, clock: Callable[[], float] = time.time,
                 market_open: Callable = market.is_open):
        rem = cfg.remediation
        self.cfg = cfg
        self.clock = clock
        self.policy = Policy(rem.policy, market_open)
        self._hold_journal(rem.journal)
        self.journal = Journal(rem.journal)
        self.claims = RedisClaims(rem.redis_url) if rem.redis_url else \
            LocalClaims(rem.journal.parent / "locks")
        self.workdir = rem.journal.parent / "runs"
        self.workdir.mkdir(parents=True, exist_ok=True)
        actions = sorted({r.action for r in rem.policy})
        self.metrics = Metrics(actions)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.pool = ThreadPoolExecutor(rem.workers, thread_name_prefix="action")

    def _hold_journal(self, path: Path) -> None:
        """One receiver per journal: runs left open by its predecessor are surely dead."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._journal_lock = open(path.with_name(path.name + ".lock"), "a+")
        try:
            fcntl.flock(self._journal_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JournalInUse(f"{path} is used by another running receiver") from None

    def recover(self) -> list[dict]:
        """Mark runs left queued/running by a crash ``interrupted``; never re-run them."""
        stale = self.journal.mark_interrupted(lambda owner: True)
        for r in stale:
            self.metrics.actions.labels(r["action"], "interrupted").inc()
            log.warning("run %s (%s, rule %s) was %s when the receiver stopped: marked interrupted, "
                        "not re-run", r["id"], r["action"], r["rule"], r["status"])
        return stale

    def accept(self, n: Notification, body: str) -> list[QueuedRun]:
        """Journal the notification and one decision per alert; JournalUnavailable -> 503."""
        now = self.clock()
        queued: list[QueuedRun] = []
        tally: list[tuple[str, str]] = []
        with self.journal.transaction() as tx:
            nid = tx.add_notification(now, n, body)
            for i, alert in enumerate(n.alerts):
                verdict = self.policy.judge(alert, now, tx)
                rule, outcome, reason = verdict.rule, verdict.outcome, verdict.reason
                episode = episode_key(rule.name, alert) if rule else ""
                if outcome == ACT:
                    try:
                        if tx.target_busy(rule.target) or self.claims.target_busy(rule.target):
                            outcome, reason = SUPPRESSED, "locked"
                        elif not self.claims.claim_episode(episode, self.journal.node):
                            outcome, reason = SUPPRESSED, "duplicate"
                    except ClaimsUnavailable as exc:
                        log.error("claims store unavailable, not acting: %s", exc)
                        outcome, reason = SUPPRESSED, "redis_unavailable"
                did = tx.add_decision(nid, i, now, alert, rule, rule.action if rule else None,
                                      outcome, reason)
                tally.append((outcome, reason))
                if outcome == ACT:
                    argv = argv_for(rule.action, self.cfg)
                    run_id = tx.add_run(did, episode, rule, argv, alert.to_dict(), now, self.owner)
                    queued.append(QueuedRun(run_id, rule, argv, alert.to_dict()))
        # Counted once committed: the metrics never claim what the journal does not hold.
        self.metrics.notifications.inc()
        for outcome, reason in tally:
            self.metrics.decisions.labels(outcome).inc()
            if outcome == SUPPRESSED:
                self.metrics.suppressions.labels(reason).inc()
        return queued

    def dispatch(self, runs: list[QueuedRun]) -> list:
        return [self.pool.submit(self._execute, run) for run in runs]

    def _execute(self, run: QueuedRun) -> None:
        rule = run.rule
        self.metrics.running.inc()
        lock = None
        try:
            try:
                lock = self.claims.lock(rule.target, ttl=rule.timeout + 60)
            except ClaimsUnavailable as exc:
                self.journal.run_finished(run.run_id, "skipped", None, f"claims store unavailable: {exc}")
                self.metrics.suppressions.labels("redis_unavailable").inc()
                return
            if lock is None:
                self.journal.run_finished(run.run_id, "skipped", None,
                                          f"target {rule.target!r} is locked by another run")
                self.metrics.suppressions.labels("locked").inc()
                return
            self.journal.run_started(run.run_id, lock.token)
            log.info("run %s: %s (rule %s, fencing token %s)", run.run_id, rule.action, rule.name,
                     lock.token)
            extra = {"PITWATCH_RULE": rule.name, "PITWATCH_ACTION": rule.action,
                     "PITWATCH_RUN_ID": str(run.run_id), "PITWATCH_FENCING_TOKEN": str(lock.token)}
            result = runner.run(run.argv, run.alert, rule.timeout, extra, workdir=self.workdir)
            self.journal.run_finished(run.run_id, result.status, result.exit_code, result.output)
            self.metrics.actions.labels(rule.action, result.status).inc()
            self.metrics.duration.labels(rule.action).observe(result.duration)
            self.metrics.last_action.labels(rule.action).set(time.time())
            log.info("run %s: %s after %.1fs (exit %s)", run.run_id, result.status,
                     result.duration, result.exit_code)
        except Exception:
            log.exception("run %s failed inside the receiver", run.run_id)
        finally:
            if lock is not None:
                lock.release()
            self.metrics.running.dec()

    def close(self, wait: bool = True) -> None:
        self.pool.shutdown(wait=wait)
        self.journal.close()
        self._journal_lock.close()

    def counts(self) -> Counter:
        return Counter(self.journal.counts())
