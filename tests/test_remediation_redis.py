"""Several receivers sharing a real Redis act exactly once between them."""
from __future__ import annotations

import threading

import pytest
import yaml

from pitwatch.core.procs import free_port
from support.remediation import PY, Receiver, alert, journal_rows, notification, remediation_config
from support.servers import start_redis
from support.waiting import EVENTUALLY, wait_until

RECORD = ("import os, sys, time; time.sleep(0.3); open(sys.argv[1], 'a')"
          ".write(os.environ['PITWATCH_FINGERPRINT'] + ' ' + os.environ['PITWATCH_FENCING_TOKEN'] + '\\n')")


def make_pair(tmp_path, redis_port, cooldown=0):
    out = tmp_path / "ran.txt"
    receivers = []
    for name in ("a", "b"):
        root = tmp_path / name
        root.mkdir(exist_ok=True)
        port = free_port()
        cfg = {"platform": {"database": str(tmp_path / "trading.db")},
               "remediation": remediation_config(
                   root, port, redis_url=f"redis://127.0.0.1:{redis_port}/0",
                   actions={"record": [PY, "-c", RECORD, str(out)]},
                   policy=[{"name": "rollback", "match": {"remediation": "rollback"},
                            "action": "record", "cooldown": cooldown, "max_runs": 100}])}
        (root / "pitwatch.yml").write_text(yaml.safe_dump(cfg))
        r = Receiver(root / "pitwatch.yml", port, root / "remediator.log")
        r.journal = root / "journal" / "journal.db"
        receivers.append(r)
    return receivers, out


@pytest.fixture
def pair(tmp_path):
    redis_port = free_port()
    server, _ = start_redis(tmp_path, port=redis_port)
    receivers, out = make_pair(tmp_path, redis_port)
    yield receivers, out, server, redis_port
    for r in receivers:
        r.stop()
    server.stop()


def ran(out):
    return out.read_text().splitlines() if out.exists() else []


def test_two_receivers_act_once_per_episode(pair):
    (a, b), out, _, _ = pair
    for episode in range(4):
        body = notification([alert(remediation="rollback", fingerprint=f"ep{episode}",
                                   starts_at=f"2026-11-25T10:0{episode}:00Z")])
        # Both peers of an HA Alertmanager pair deliver, each twice, at the same time.
        codes = []
        threads = [threading.Thread(target=lambda r=r: codes.append(r.post(body).status_code))
                   for r in (a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes == [200] * 4
        wait_until(lambda: len(ran(out)) == episode + 1, EVENTUALLY, what=f"episode {episode}")
        # The target lock is free again before the next episode.
        wait_until(lambda: all(x["status"] not in ("queued", "running") for r in (a, b) for x in r.runs()),
                   EVENTUALLY, what=f"the runs of episode {episode} to end")
    lines = ran(out)
    assert sorted(line.split()[0] for line in lines) == ["ep0", "ep1", "ep2", "ep3"]
    tokens = [int(line.split()[1]) for line in lines]
    assert tokens == sorted(tokens) and len(set(tokens)) == 4  # fencing tokens only grow
    acted = sum(journal_rows(r.journal, "select count(*) from runs")[0][0] for r in (a, b))
    assert acted == 4
    dupes = sum(journal_rows(r.journal, "select count(*) from decisions where outcome='suppressed'")[0][0]
                for r in (a, b))
    assert dupes == 12  # every other delivery was judged and journalled, not lost


def test_without_redis_nobody_acts_and_a_resend_acts_later(pair, tmp_path):
    (a, _), out, server, redis_port = pair
    server.stop()
    body = notification([alert(remediation="rollback", fingerprint="down")])
    assert a.post(body).status_code == 200  # accepted and journalled...
    assert journal_rows(a.journal, "select outcome, reason from decisions") == \
        [("suppressed", "redis_unavailable")]
    assert journal_rows(a.journal, "select count(*) from runs") == [(0,)]
    assert not out.exists()  # ...but nothing acts without the shared claim
    server2, _ = start_redis(tmp_path, port=redis_port)
    try:
        assert a.post(body).status_code == 200
        wait_until(lambda: ran(out) and ran(out)[0].startswith("down"), EVENTUALLY, what="the action")
    finally:
        server2.stop()


def test_cooldown_holds_across_replicas(tmp_path):
    redis_port = free_port()
    server, _ = start_redis(tmp_path, port=redis_port)
    (a, b), out = make_pair(tmp_path, redis_port, cooldown="1h")
    try:
        first = notification([alert(remediation="rollback", fingerprint="one")])
        assert a.post(first).status_code == 200
        wait_until(lambda: len(ran(out)) == 1, EVENTUALLY, what="the first action")
        wait_until(lambda: a.runs()[0]["status"] == "success", EVENTUALLY, what="the first run to end")
        # Another alert series on the other replica, inside the cooldown of the first run.
        second = notification([alert(remediation="rollback", fingerprint="two")])
        assert b.post(second).status_code == 200
        assert journal_rows(b.journal, "select outcome, reason from decisions") == \
            [("suppressed", "cooldown")]
        assert journal_rows(b.journal, "select count(*) from runs") == [(0,)]
        assert len(ran(out)) == 1
    finally:
        for r in (a, b):
            r.stop()
        server.stop()
