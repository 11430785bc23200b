"""The journal's retention (Journal.prune) on a real SQLite journal: old notifications and
the decisions that ran nothing go; a run, the decision that started it and the
notification it came with stay, and history still reads its trigger."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pitwatch.core.config import PolicyRule
from pitwatch.remediation import history
from pitwatch.remediation.alerts import parse
from pitwatch.remediation.journal import Journal
from support.remediation import alert, notification

RULE = PolicyRule(name="rollback_bad_release", action="rollback", match={"remediation": "rollback"})

# One notification: when it arrived, and per alert whether its decision started a run.
deliveries = st.lists(st.tuples(st.floats(min_value=0, max_value=1000, allow_nan=False),
                                st.lists(st.booleans(), min_size=1, max_size=3)),
                      min_size=1, max_size=12)


def fill(journal: Journal, plan) -> dict[int, int]:
    """Write ``plan`` as the engine would; run id -> the decision that started it."""
    started: dict[int, int] = {}
    for n_i, (at, acts) in enumerate(plan):
        alerts = [alert(fingerprint=f"f{n_i}x{i}", remediation="rollback",
                        starts_at=f"2026-11-25T10:{n_i:02d}:{i:02d}Z") for i in range(len(acts))]
        body = json.dumps(notification(alerts))
        n = parse(body)
        with journal.transaction() as tx:
            nid = tx.add_notification(at, n, body)
            tx.note_alerts(at, [(a, None) for a in n.alerts])
            for i, (a, act) in enumerate(zip(n.alerts, acts)):
                row = (nid, i, at, a.alertname, a.status, a.fingerprint, a.starts_at, RULE.name,
                       RULE.action, RULE.target, "act" if act else "suppressed",
                       "policy" if act else "cooldown")
                did = tx.add_decision(row)
                if act:
                    run_id = tx.add_run(did, f"{RULE.name}|{a.fingerprint}|{a.starts_at}", RULE,
                                        ["true"], a.to_dict(), at, "test:1")
                    started[run_id] = did
        for run_id in started:
            journal.run_finished(run_id, "success", 0, "rolled back to v1; the app is healthy")
    return started


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=deliveries, cutoff=st.floats(min_value=0, max_value=1100, allow_nan=False))
def test_prune_never_drops_a_run_or_the_decision_that_started_it(tmp_path_factory, plan, cutoff):
    journal = Journal(tmp_path_factory.mktemp("journal") / "journal.db")
    try:
        started = fill(journal, plan)
        before_decisions = journal.read("select id, decided_at, run_id from decisions")
        journal.prune(cutoff)
        # Every run, its decision and its notification are still there, and readable.
        runs = journal.read("select id, decision_id from runs")
        assert {r["id"]: r["decision_id"] for r in runs} == started
        for run_id, decision_id in started.items():
            row, = journal.read("select run_id, notification_id from decisions where id=?",
                                (decision_id,))
            assert row["run_id"] == run_id
            assert journal.read("select 1 from notifications where id=?", (row["notification_id"],))
            entry = history.run(journal, run_id)
            assert entry["trigger"]["labels"]["remediation"] == "rollback"
            assert entry["summary"]["to_version"] == "v1"
        # Decisions that ran nothing go once older than the cutoff, and only then.
        kept = {d["id"] for d in journal.read("select id from decisions")}
        for d in before_decisions:
            assert (d["id"] in kept) == (d["run_id"] is not None or d["decided_at"] >= cutoff)
        # A held-back decision that is kept still reads its labels from its notification.
        for d in history.decisions(journal, history.Query(limit=500)):
            assert d["trigger"]["labels"]["remediation"] == "rollback"
        # Notifications go when nothing of theirs is left and they are old.
        for n in journal.read("select id, received_at from notifications"):
            assert n["received_at"] >= cutoff or journal.read(
                "select 1 from decisions where notification_id=?", (n["id"],))
    finally:
        journal.close()


def test_prune_twice_is_the_same_as_once(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    try:
        fill(journal, [(10.0, [True, False]), (20.0, [False]), (900.0, [False, True])])
        journal.prune(500.0)
        once = [journal.read(f"select * from {t} order by 1") for t in ("notifications", "decisions", "runs")]
        assert journal.prune(500.0) == 0
        assert once == [journal.read(f"select * from {t} order by 1")
                        for t in ("notifications", "decisions", "runs")]
        assert len(once[2]) == 2 and len(once[1]) == 3  # two runs; their decisions, and the newer one
    finally:
        journal.close()
