"""Accepting a notification (journal first) and running what the policy decided.

:meth:`Engine.accept` judges each alert alone and commits the notification, the
latest state of its alerts (what ``blocked_by`` sees firing), its decisions and the
queued runs; only then may the receiver answer. One writer thread judges and commits
in arrival order, so the policy always sees the history before it.
:meth:`Engine.dispatch` hands the queued runs to a bounded thread pool.
"""
from __future__ import annotations

import fcntl
import logging
import os
import queue
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pitwatch.core import market
from pitwatch.core.config import Config, PolicyRule

from pitwatch.remediation import history, runner
from pitwatch.remediation.actions import argv_for
from pitwatch.remediation.alerts import Notification
from pitwatch.remediation.claims import ClaimsUnavailable, LocalClaims, RedisClaims
from pitwatch.remediation.journal import Journal, JournalUnavailable
from pitwatch.remediation.metrics import OUTCOMES, REASONS, RESULTS, Metrics
from pitwatch.remediation.policy import ACT, SUPPRESSED, Policy, episode_key, firing_until

log = logging.getLogger("pitwatch.remediator")
BATCH_MAX = 128  # notifications per group commit
PRUNE_EVERY = 3600.0  # seconds between journal retention passes


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
        self.journal = Journal(rem.journal, synchronous=rem.journal_synchronous)
        self.claims = RedisClaims(rem.redis_url) if rem.redis_url else \
            LocalClaims(rem.journal.parent / "locks")
        self.workdir = rem.journal.parent / "runs"
        self.workdir.mkdir(parents=True, exist_ok=True)
        actions = sorted({r.action for r in rem.policy})
        self.metrics = Metrics(actions)
        if rem.redis_url:
            self.metrics.watch_redis(lambda: self.claims_error() is None)
        # Label children looked up once: the ack path counts ten decisions per request.
        self._decided = {o: self.metrics.decisions.labels(o) for o in OUTCOMES}
        self._suppressed = {r: self.metrics.suppressions.labels(r) for r in REASONS}
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.pool = ThreadPoolExecutor(rem.workers, thread_name_prefix="action")
        self._inbox: queue.Queue = queue.Queue()
        self._pruned_at = float("-inf")
        self._writer = threading.Thread(target=self._write_loop, name="journal-writer", daemon=True)
        self._writer.start()

    def _hold_journal(self, path: Path) -> None:
        """One receiver per journal: runs left open by its predecessor are surely dead."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._journal_lock = open(path.with_name(path.name + ".lock"), "a+")
        try:
            fcntl.flock(self._journal_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JournalInUse(f"{path} is used by another running receiver") from None

    def recover(self) -> list[dict]:
        """Mark runs left queued/running by a crash ``interrupted``; never re-run them.

        The run-info metric starts from the journal's last run of each action and result,
        so a restarted receiver's mail still names what its predecessor did."""
        stale = self.journal.mark_interrupted()
        for entry in history.last_runs_by_result(self.journal):
            if entry["status"] in RESULTS:
                self.metrics.record_run(entry)
        for r in stale:
            self.metrics.actions.labels(r["action"], "interrupted").inc()
            log.warning("run %s (%s, rule %s) was %s when the receiver stopped: marked interrupted, "
                        "not re-run", r["id"], r["action"], r["rule"], r["status"])
        return stale

    def claims_error(self) -> str | None:
        """Why no action can run now (the shared claims store does not answer), or None."""
        try:
            self.claims.ping()
        except ClaimsUnavailable as exc:
            return f"redis unavailable: {exc}"
        return None

    def accept(self, n: Notification, body: str) -> list[QueuedRun]:
        """Journal the notification and one decision per alert; JournalUnavailable -> 503.

        Returns once the commit holding them is on disk. Concurrent requests share one
        commit (group commit): a single fsync then covers a whole batch.
        """
        done: Future = Future()
        self._inbox.put((n, body, done))
        return done.result()

    def _write_loop(self) -> None:
        while True:
            try:
                item = self._inbox.get(timeout=PRUNE_EVERY)
            except queue.Empty:
                item = False
            self._prune_now_and_then()
            if item is None:
                return
            if item is False:
                continue
            batch = [item]
            while len(batch) < BATCH_MAX:
                try:
                    nxt = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._inbox.put(None)  # stop after this batch
                    break
                batch.append(nxt)
            self._commit(batch)

    def _prune_now_and_then(self) -> None:
        now = self.clock()
        if now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        try:
            dropped = self.journal.prune(now - self.cfg.remediation.journal_retention)
        except JournalUnavailable as exc:
            log.warning("journal prune failed (retried later): %s", exc)
            return
        if dropped:
            log.info("journal: dropped %d notifications older than the retention", dropped)

    def _commit(self, batch: list) -> None:
        try:
            with self.journal.transaction() as tx:
                results = [self._judge(tx, n, body) for n, body, _ in batch]
        except Exception as exc:  # JournalUnavailable, or a bug: nobody is told "accepted"
            if not isinstance(exc, JournalUnavailable):
                log.exception("accepting a batch failed")
            for _, _, done in batch:
                done.set_exception(exc if isinstance(exc, JournalUnavailable)
                                   else JournalUnavailable(str(exc)))
            return
        # Counted once committed: the metrics never claim what the journal does not hold.
        decisions, suppressions = self._decided, self._suppressed
        for (_, _, done), (queued, tally) in zip(batch, results):
            self.metrics.notifications.inc()
            for outcome, reason in tally:
                decisions[outcome].inc()
                if outcome == SUPPRESSED:
                    suppressions[reason].inc()
            done.set_result(queued)

    def _judge(self, tx, n: Notification, body: str) -> tuple[list[QueuedRun], list]:
        now = self.clock()
        queued: list[QueuedRun] = []
        tally: list[tuple[str, str]] = []
        nid = tx.add_notification(now, n, body)
        # Before any judgement: an alert blocks another of the same notification too.
        tx.note_alerts(now, [(a, firing_until(a, now)) for a in n.alerts])
        pending: list[tuple] = []  # decisions without a run, inserted together
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
                    elif (shared := self.claims.admit(rule, now, episode)) is not None:
                        outcome, reason = SUPPRESSED, shared  # another replica ran it lately
                except ClaimsUnavailable as exc:
                    log.error("claims store unavailable, not acting: %s", exc)
                    outcome, reason = SUPPRESSED, "redis_unavailable"
            row = (nid, i, now, alert.alertname, alert.status, alert.fingerprint, alert.starts_at,
                   rule.name if rule else None, rule.action if rule else None,
                   rule.target if rule else None, outcome, reason)
            tally.append((outcome, reason))
            if outcome != ACT:
                pending.append(row)
                continue
            tx.add_decisions(pending)  # keep the journal in alert order
            pending = []
            did = tx.add_decision(row)
            argv = argv_for(rule.action, self.cfg)
            run_id = tx.add_run(did, episode, rule, argv, alert.to_dict(), now, self.owner)
            queued.append(QueuedRun(run_id, rule, argv, alert.to_dict()))
        tx.add_decisions(pending)
        return queued, tally

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
            # The facts first: a scrape never sees the count of a run without them.
            finished = history.run(self.journal, run.run_id)
            if finished is not None:
                self.metrics.record_run(finished)
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
        self._inbox.put(None)
        self._writer.join(10)
        self.pool.shutdown(wait=wait)
        self.journal.close()
        self._journal_lock.close()
