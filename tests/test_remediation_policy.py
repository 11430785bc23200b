"""The policy's guards, each journalled with its reason, at injected instants on the real
CME Globex calendar and a real journal."""
from __future__ import annotations

import json
import sqlite3
import subprocess
from datetime import datetime, timezone

import pytest
import yaml

from pitwatch.core import config, market
from pitwatch.remediation.alerts import parse
from pitwatch.remediation.engine import Engine
from support.remediation import PY, alert, journal_rows, notification

# Wednesday 25 Nov 2026 10:00 PT: Globex trades. Saturday 28 Nov: closed.
OPEN = datetime(2026, 11, 25, 18, 0, tzinfo=timezone.utc).timestamp()
CLOSED = datetime(2026, 11, 28, 18, 0, tzinfo=timezone.utc).timestamp()
HALT = datetime(2026, 11, 25, 22, 30, tzinfo=timezone.utc).timestamp()  # 14:30 PT
CALENDAR = market.MarketCalendar()  # one load of the real calendar for the module


def rule(name, **kw):
    return {"name": name, "action": "noop", "match": {"remediation": name}, **kw}


def make_engine(tmp_path, rules, clock):
    raw = {"platform": {"database": str(tmp_path / "t.db")},
           "remediation": {"auth": "none", "journal": str(tmp_path / "journal.db"),
                           "actions": {"noop": ["true"]}, "policy": rules}}
    cfg = config.parse(raw, base=tmp_path, source=tmp_path / "pitwatch.yml")
    return Engine(cfg, clock=clock, market_open=CALENDAR.is_open)


class Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


def send(engine, *alerts):
    """Accept, then run what was queued (`true`) to the end."""
    body = json.dumps(notification(list(alerts)))
    queued = engine.accept(parse(body), body)
    for future in engine.dispatch(queued):
        future.result(timeout=30)
    return queued


def last_decision(tmp_path):
    return journal_rows(tmp_path / "journal.db",
                        "select outcome, reason from decisions order by id desc limit 1")[0]


@pytest.fixture
def engines():
    made = []
    yield made
    for e in made:
        e.close()


def test_cooldown_and_max_runs_per_window(tmp_path, engines):
    clock = Clock(CLOSED)
    e = make_engine(tmp_path, [rule("rollback", cooldown="10m", max_runs=2, window="1h")], clock)
    engines.append(e)

    def fire(minutes, episode):
        clock.t = CLOSED + minutes * 60
        queued = send(e, alert(remediation="rollback", fingerprint="f",
                               starts_at=f"2026-11-28T18:{episode:02d}:00Z"))
        return len(queued), last_decision(tmp_path)

    assert fire(0, 0) == (1, ("act", "policy"))
    assert fire(5, 1) == (0, ("suppressed", "cooldown"))
    assert fire(11, 2) == (1, ("act", "policy"))
    assert fire(22, 3) == (0, ("suppressed", "max_runs"))
    assert fire(45, 4) == (0, ("suppressed", "max_runs"))
    assert fire(72, 5) == (1, ("act", "policy"))  # both earlier runs left the window
    assert fire(72, 5) == (0, ("suppressed", "duplicate"))
    m = e.metrics.registry.get_sample_value
    assert m("pitwatch_remediation_suppressions_total", {"reason": "max_runs"}) == 2
    assert m("pitwatch_remediation_suppressions_total", {"reason": "cooldown"}) == 1


@pytest.mark.parametrize("when, setting, expected", [
    (OPEN, "deny", ("suppressed", "market_hours")),
    (OPEN, "dry_run", ("dry_run", "market_hours")),
    (OPEN, "allow", ("act", "policy")),
    (CLOSED, "deny", ("act", "policy")),
    (HALT, "deny", ("act", "policy")),  # the daily 14:00-15:00 PT halt
])
def test_market_hours(tmp_path, engines, when, setting, expected):
    e = make_engine(tmp_path, [rule("restore", market_hours=setting)], Clock(when))
    engines.append(e)
    queued = send(e, alert(remediation="restore"))
    assert last_decision(tmp_path) == expected
    assert len(queued) == (1 if expected[0] == "act" else 0)
    runs = journal_rows(tmp_path / "journal.db", "select count(*) from runs")[0][0]
    assert runs == len(queued)


def test_dry_run_rule_and_first_match_wins(tmp_path, engines):
    rules = [rule("rollback", dry_run=True),
             {"name": "catch_all_critical", "action": "noop", "match_re": {"severity": "crit.*"}},
             {"name": "never", "action": "noop", "match_re": {"severity": ".*"}, "cooldown": 0}]
    e = make_engine(tmp_path, rules, Clock(CLOSED))
    engines.append(e)
    send(e, alert(remediation="rollback", severity="critical", fingerprint="a"),
         alert(severity="critical", fingerprint="b"), alert(severity="info", fingerprint="c"),
         alert(fingerprint="d"))
    rows = journal_rows(tmp_path / "journal.db",
                        "select fingerprint, rule, outcome, reason from decisions order by id")
    # A regex matches a missing label as "" (Alertmanager's semantics), so "d" matches too.
    # One target (platform): the first run holds it, the others wait for a re-send.
    assert rows == [("a", "rollback", "dry_run", "dry_run"),
                    ("b", "catch_all_critical", "act", "policy"),
                    ("c", "never", "suppressed", "locked"),
                    ("d", "never", "suppressed", "locked")]
    assert journal_rows(tmp_path / "journal.db", "select count(*) from runs") == [(1,)]
    send(e, alert(fingerprint="e", other="x"))
    assert last_decision(tmp_path) == ("act", "policy")


def test_runs_on_one_target_do_not_overlap(tmp_path, engines):
    e = make_engine(tmp_path, [rule("rollback"), rule("restore")], Clock(CLOSED))
    engines.append(e)
    body = json.dumps(notification([alert(remediation="rollback", fingerprint="a")]))
    queued = e.accept(parse(body), body)  # queued, not yet finished
    send(e, alert(remediation="restore", fingerprint="b"))
    assert last_decision(tmp_path) == ("suppressed", "locked")
    for future in e.dispatch(queued):
        future.result(timeout=30)
    send(e, alert(remediation="restore", fingerprint="b"))  # Alertmanager's next re-send
    assert last_decision(tmp_path) == ("act", "policy")


def test_replay_prints_what_would_happen_without_acting(tmp_path):
    journal = tmp_path / "journal.db"
    raw = {"platform": {"database": str(tmp_path / "t.db")},
           "remediation": {"auth": "none", "journal": str(journal),
                           "policy": [{"name": "rollback_bad_release", "action": "rollback",
                                       "match": {"remediation": "rollback"},
                                       "market_hours": "deny"}]}}
    cfg = tmp_path / "pitwatch.yml"
    cfg.write_text(yaml.safe_dump(raw))
    body = tmp_path / "n.json"
    body.write_text(json.dumps(notification([alert(remediation="rollback"), alert("Other")])))

    def replay(*extra):
        return subprocess.run([PY, "-m", "pitwatch", "remediator", "replay", str(body),
                               "--config", str(cfg), *extra],
                              capture_output=True, text=True, timeout=60)

    out = replay("--at", "2026-11-25T18:00:00Z")
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert "rule rollback_bad_release: suppressed (market_hours)" in first
    assert "ignored (no_rule)" in second
    out = replay("--at", "2026-11-28T18:00:00Z", "--json")
    rows = json.loads(out.stdout)
    assert rows[0]["outcome"] == "act"
    assert rows[0]["argv"] == [PY, "-m", "pitwatch", "rollback", "--config", str(cfg.resolve())]
    assert not journal.exists()  # nothing written
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "4"}')
    out = subprocess.run([PY, "-m", "pitwatch", "remediator", "replay", str(bad), "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "alerts" in out.stderr


def test_journal_retention_keeps_runs_and_drops_old_noise(tmp_path, engines):
    clock = Clock(CLOSED)
    e = make_engine(tmp_path, [rule("rollback", cooldown=0)], clock)
    engines.append(e)
    send(e, alert(remediation="rollback", fingerprint="old"), alert("Noise", fingerprint="n1"))
    clock.t = CLOSED + 31 * 86400  # past the 30-day default retention
    e._pruned_at = CLOSED  # the last pass was a month ago
    send(e, alert("Noise", fingerprint="n2"))
    journal = tmp_path / "journal.db"
    assert journal_rows(journal, "select fingerprint, outcome from decisions order by id") == \
        [("old", "act"), ("n2", "ignored")]
    assert journal_rows(journal, "select count(*) from notifications") == [(2,)]
    assert journal_rows(journal, "select fingerprint from alert_state") == [("n2",)]
    assert journal_rows(journal, "select episode from runs") == \
        [("rollback|old|2026-11-25T10:00:00.123456789Z",)]
    # The kept run still answers for its episode.
    send(e, alert(remediation="rollback", fingerprint="old"))
    assert last_decision(tmp_path) == ("suppressed", "duplicate")


# --- blocked_by: a damaged database is restored, never rolled back ---------------------

ROLLBACK = rule("rollback", cooldown=0, blocked_by=[{"remediation": "restore"}])
RESTORE = rule("restore", cooldown=0)


def db_fault(status="firing", **kw):
    ends = "2026-11-28T18:30:00Z" if status == "resolved" else "0001-01-01T00:00:00Z"
    return {**alert("DatabaseIntegrityCheckFailed", status=status, fingerprint="db",
                    remediation="restore", job="exporter", **kw), "endsAt": ends}


def errors(**kw):
    return alert("AppHighErrorRate", fingerprint="err", remediation="rollback", job="app", **kw)


def decisions(tmp_path, since_id=0):
    return journal_rows(tmp_path / "journal.db",
                        "select fingerprint, rule, outcome, reason, run_id is not null "
                        "from decisions where id > ? order by id", (since_id,))


def test_blocked_while_a_database_fault_fires_then_acts_once_it_resolved(tmp_path, engines):
    clock = Clock(CLOSED)
    e = make_engine(tmp_path, [ROLLBACK, RESTORE], clock)
    engines.append(e)
    send(e, db_fault())
    clock.t += 60
    assert send(e, errors()) == []
    clock.t += 60
    send(e, db_fault(status="resolved"))
    clock.t += 60
    queued = send(e, errors())  # Alertmanager's re-send of the same episode
    assert [q.rule.name for q in queued] == ["rollback"]
    assert decisions(tmp_path) == [("db", "restore", "act", "policy", 1),
                                   ("err", "rollback", "suppressed", "blocked_by", 0),
                                   ("db", "restore", "ignored", "resolved", 0),
                                   ("err", "rollback", "act", "policy", 1)]
    assert journal_rows(tmp_path / "journal.db", "select rule from runs order by id") == \
        [("restore",), ("rollback",)]
    m = e.metrics.registry.get_sample_value
    assert m("pitwatch_remediation_suppressions_total", {"reason": "blocked_by"}) == 1


@pytest.mark.parametrize("order", ["errors_first", "fault_first"])
def test_a_fault_in_the_same_notification_blocks_too(tmp_path, engines, order):
    e = make_engine(tmp_path, [ROLLBACK, RESTORE], Clock(CLOSED))
    engines.append(e)
    pair = [errors(), db_fault()] if order == "errors_first" else [db_fault(), errors()]
    queued = send(e, *pair)
    assert [q.rule.name for q in queued] == ["restore"]
    assert sorted(decisions(tmp_path)) == [("db", "restore", "act", "policy", 1),
                                           ("err", "rollback", "suppressed", "blocked_by", 0)]


def test_a_firing_state_not_heard_of_again_goes_stale(tmp_path, engines):
    from pitwatch.remediation.policy import FIRING_TTL

    clock = Clock(CLOSED)
    e = make_engine(tmp_path, [ROLLBACK], clock)  # no restore rule: noted all the same
    engines.append(e)
    send(e, db_fault())
    clock.t = CLOSED + 3600  # Alertmanager's repeat_interval: the fault still fires
    send(e, db_fault())
    clock.t = CLOSED + 3600 + FIRING_TTL - 1
    send(e, errors())
    assert last_decision(tmp_path) == ("suppressed", "blocked_by")
    clock.t = CLOSED + 3600 + FIRING_TTL + 1  # no re-send, no resolved: no longer believed
    send(e, errors())
    assert last_decision(tmp_path) == ("act", "policy")


def test_an_end_time_given_with_a_firing_alert_ends_the_block(tmp_path, engines):
    clock = Clock(CLOSED)  # 2026-11-28T18:00:00Z
    e = make_engine(tmp_path, [ROLLBACK], clock)
    engines.append(e)
    send(e, {**db_fault(), "endsAt": "2026-11-28T18:05:00Z"})
    clock.t = CLOSED + 299
    send(e, errors())
    assert last_decision(tmp_path) == ("suppressed", "blocked_by")
    clock.t = CLOSED + 301
    send(e, errors())
    assert last_decision(tmp_path) == ("act", "policy")


def test_only_a_full_label_set_of_another_alert_blocks(tmp_path, engines):
    blocked_by = [{"remediation": "restore", "job": "exporter"}, {"severity": "critical"}]
    e = make_engine(tmp_path, [rule("rollback", cooldown=0, blocked_by=blocked_by)],
                    Clock(CLOSED))
    engines.append(e)
    # Its own labels never block it, though they match the second set.
    send(e, errors(severity="critical", starts_at="2026-11-28T17:00:00Z"))
    assert last_decision(tmp_path) == ("act", "policy")
    send(e, alert("AppDatabaseCorruption", fingerprint="c", remediation="restore", job="app"),
         alert("Other", fingerprint="o", job="exporter", severity="warning"))
    send(e, errors(starts_at="2026-11-28T17:10:00Z"))
    assert last_decision(tmp_path) == ("act", "policy")  # parts of a set, in two alerts
    send(e, db_fault())
    send(e, errors(starts_at="2026-11-28T17:20:00Z"))
    assert last_decision(tmp_path) == ("suppressed", "blocked_by")


def test_replay_answers_blocked_as_the_receiver_did(tmp_path, engines):
    from pitwatch.remediation.alerts import parse as parse_notification
    from pitwatch.remediation.replay import replay

    e = make_engine(tmp_path, [ROLLBACK, RESTORE], Clock(CLOSED))
    engines.append(e)
    send(e, db_fault())
    send(e, errors())
    assert last_decision(tmp_path) == ("suppressed", "blocked_by")
    cfg = e.cfg

    def replayed(*alerts, at=CLOSED + 10):
        rows = replay(cfg, parse_notification(json.dumps(notification(list(alerts)))), at)
        return [(r["fingerprint"], r["outcome"], r["reason"]) for r in rows]

    assert replayed(errors()) == [("err", "suppressed", "blocked_by")]
    # The notification's own alerts count, as in the receiver: resolved in it, not blocked.
    assert replayed(db_fault(status="resolved"), errors()) == \
        [("db", "ignored", "resolved"), ("err", "act", "policy")]
    e.close()
    engines.remove(e)
    old = sqlite3.connect(tmp_path / "journal.db")  # a journal from before blocked_by
    old.execute("drop table alert_state")
    old.commit()
    old.close()
    assert replayed(errors()) == [("err", "act", "policy")]
    (tmp_path / "journal.db").unlink()
    assert replayed(errors(), db_fault()) == [("err", "suppressed", "blocked_by"),
                                             ("db", "act", "policy")]


@pytest.mark.parametrize("blocked_by", [{"remediation": "restore"}, ["restore"],
                                        [{"remediation": 1}], [{}]])
def test_blocked_by_is_a_list_of_label_sets(tmp_path, blocked_by):
    raw = {"platform": {"database": str(tmp_path / "t.db")},
           "remediation": {"auth": "none", "journal": str(tmp_path / "journal.db"),
                           "policy": [rule("rollback", blocked_by=blocked_by)]}}
    with pytest.raises(config.ConfigError) as err:
        config.parse(raw, base=tmp_path, source=tmp_path / "pitwatch.yml")
    assert "remediation.policy[0].blocked_by" in str(err.value)
