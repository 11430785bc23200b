"""Beyond one machine: two Alertmanagers in a real cluster, two remediators sharing a real
Redis, every Alertmanager delivering to every remediator.

The Alertmanagers run the shipped ``alerts/alertmanager.yml`` as rendered by
:mod:`pitwatch.render`, with two test-only changes: the remediator route's timings
are shortened (``group_wait 0s``, ``group_interval 1s``, ``repeat_interval 2s``) so the
peers send and re-send within seconds, and its receiver carries a second
``webhook_configs`` entry so that each Alertmanager calls both remediators. A short
``--cluster.peer-timeout`` makes the second peer send as well instead of waiting for the
first one's notification log: every episode reaches the remediators several times.
The actions are named test actions appending a line to a file. The tests share the stack;
each counts from what it finds there, so they hold in any order.
"""
from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis
import requests
import yaml

from pitwatch.core.procs import Child, free_port, wait_http
from support import rendered
from support.remediation import PY, Receiver, journal_rows, remediation_config
from support.servers import start_redis
from support.waiting import EVENTUALLY, STARTUP, holds, wait_until

pytestmark = pytest.mark.slow  # starts two Alertmanagers

# Appends "<fingerprint> <startsAt> <fencing token>" to the file: one line per run.
RECORD = ("import os, sys; open(sys.argv[1], 'a').write(' '.join(os.environ[k] for k in "
          "('PITWATCH_FINGERPRINT', 'PITWATCH_STARTS_AT', 'PITWATCH_FENCING_TOKEN')) + '\\n')")
# Writes "start <startsAt> <pid>", sleeps, then "end <startsAt>": a run long enough to be
# killed in the middle of.
SLOW = ("import os, sys, time; f = sys.argv[1]; s = os.environ['PITWATCH_STARTS_AT']; "
        "open(f, 'a').write(f'start {s} {os.getpid()}\\n'); time.sleep(float(sys.argv[2])); "
        "open(f, 'a').write(f'end {s}\\n')")
SLOW_SECONDS = 6


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def instant(text: str) -> datetime:
    """An RFC 3339 time as Alertmanager writes it (trailing zeros of the fraction dropped)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def alertmanager_config(root: Path, remediators: list[str]) -> Path:
    path = rendered.alertmanager(root / "rendered", "127.0.0.1:1", "oncall@localhost",
                                 remediators[0], root / "token")
    cfg = yaml.safe_load(path.read_text())
    route = next(r for r in cfg["route"]["routes"] if r["receiver"] == "remediator")
    route.update(group_wait="0s", group_interval="1s", repeat_interval="2s")
    receiver = next(r for r in cfg["receivers"] if r["name"] == "remediator")
    hook = receiver["webhook_configs"][0]
    for url in remediators[1:]:
        receiver["webhook_configs"].append({**copy.deepcopy(hook), "url": url + "/alerts"})
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class Stack:
    def __init__(self, root: Path):
        self.root = root
        self.redis_port = free_port()
        self.redis, _ = start_redis(root, port=self.redis_port)
        self.record = root / "ran.txt"
        self.slow = root / "slow.txt"
        self.receivers: dict[str, Receiver] = {}
        self.ports = {name: free_port() for name in ("a", "b")}
        for name in self.ports:
            self.start_receiver(name)
        urls = [f"http://127.0.0.1:{p}" for p in self.ports.values()]
        am_config = alertmanager_config(root, urls)
        web = [free_port(), free_port()]
        gossip = [free_port(), free_port()]
        self.alertmanagers = []
        self.am_urls = [f"http://127.0.0.1:{p}" for p in web]
        for i in range(2):
            self.alertmanagers.append(Child(f"alertmanager-{i}", [
                "prometheus-alertmanager", f"--config.file={am_config}",
                f"--storage.path={root / f'am{i}'}",
                f"--web.listen-address=127.0.0.1:{web[i]}",
                f"--web.external-url=http://am{i}.test:9093",
                f"--cluster.listen-address=127.0.0.1:{gossip[i]}",
                f"--cluster.peer=127.0.0.1:{gossip[1 - i]}",
                "--cluster.peer-timeout=50ms", "--cluster.settle-timeout=5s",
            ], log=root / f"am{i}.log"))
        for am, url in zip(self.alertmanagers, self.am_urls):
            wait_http(url + "/-/ready", STARTUP, proc=am)
        # Notifications wait for the gossip to settle (--cluster.settle-timeout at most).
        wait_until(lambda: all(self.cluster(u)["status"] == "ready" for u in self.am_urls), STARTUP,
                   what="the Alertmanager cluster to settle")

    @staticmethod
    def cluster(am_url: str) -> dict:
        return requests.get(am_url + "/api/v2/status", timeout=5).json()["cluster"]

    def start_receiver(self, name: str) -> Receiver:
        root = self.root / name
        root.mkdir(exist_ok=True)
        port = self.ports[name]
        rules = [
            {"name": "record_rollback", "match": {"remediation": "rollback"}, "action": "record",
             "cooldown": 0, "max_runs": 1000, "timeout": "30s"},
            {"name": "slow_restart", "match": {"remediation": "restart"}, "action": "slow",
             "cooldown": 0, "max_runs": 1000, "timeout": "30s"},
        ]
        rem = remediation_config(
            root, port, redis_url=f"redis://127.0.0.1:{self.redis_port}/0", policy=rules,
            actions={"record": [PY, "-c", RECORD, str(self.record)],
                     "slow": [PY, "-c", SLOW, str(self.slow), str(SLOW_SECONDS)]})
        (self.root / "token").write_text((root / "token").read_text())
        (root / "pitwatch.yml").write_text(yaml.safe_dump(
            {"platform": {"database": str(self.root / "trading.db")}, "remediation": rem}))
        r = Receiver(root / "pitwatch.yml", port, root / "remediator.log")
        r.journal = root / "journal" / "journal.db"
        self.receivers[name] = r
        return r

    def fire(self, labels: dict, starts: datetime, ends: datetime | None = None) -> None:
        """What Prometheus does: the same alert to every Alertmanager."""
        alert = {"labels": labels, "startsAt": iso(starts)}
        if ends is not None:
            alert["endsAt"] = iso(ends)
        for url in self.am_urls:
            requests.post(url + "/api/v2/alerts", json=[alert], timeout=5).raise_for_status()

    def rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        return [row for r in self.receivers.values() for row in journal_rows(r.journal, sql, args)]

    def stop(self) -> None:
        for child in [*self.alertmanagers, *(r.child for r in self.receivers.values()), self.redis]:
            child.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("ha"))
    yield s
    s.stop()
    for line in lines(s.slow):  # an action orphaned by a killed receiver
        if line.startswith("start "):
            try:
                os.kill(int(line.split()[2]), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_alertmanagers_form_a_cluster(stack):
    for url in stack.am_urls:
        status = stack.cluster(url)
        assert status["status"] == "ready"
        assert len(status["peers"]) == 2, status  # itself and the other one


def test_each_episode_acts_once_20_back_to_back(stack):
    """Ten alert series, each firing, resolving and firing again (a new startsAt, so a new
    episode): twenty episodes, one after the other."""
    series = [{"alertname": "BadRelease", "remediation": "rollback", "job": "trading-app",
               "instance": f"app-{i}:5000"} for i in range(10)]
    episodes: list[tuple[dict, datetime]] = []
    done = len(lines(stack.record))
    runs_before = sum(n for (n,) in stack.rows("select count(*) from runs where rule='record_rollback'"))
    dupes_before = sum(n for (n,) in stack.rows(
        "select count(*) from decisions where rule='record_rollback' and reason='duplicate'"))
    for round_ in range(2):
        for labels in series:
            begin = datetime.now(timezone.utc)
            episodes.append((labels, begin))
            stack.fire(labels, begin)
            wait_until(lambda: len(lines(stack.record)) == done + len(episodes), EVENTUALLY, interval=0.05,
                       what=f"the action of episode {len(episodes)}")
            if round_ == 0:
                stack.fire(labels, begin, datetime.now(timezone.utc))  # resolved
    # The last episodes keep firing: both peers re-send them to both receivers.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for labels, begin in episodes[-3:]:
            stack.fire(labels, begin)
        time.sleep(0.5)
    for labels, begin in episodes[10:]:
        stack.fire(labels, begin, datetime.now(timezone.utc))
    ran = lines(stack.record)[done:]
    assert len(ran) == 20, ran
    assert len({line.split()[1] for line in ran}) == 20  # one run per startsAt, none twice
    tokens = [int(line.split()[2]) for line in ran]
    assert tokens == sorted(tokens) and len(set(tokens)) == 20  # fencing tokens only grow
    runs = sum(n for (n,) in stack.rows("select count(*) from runs where rule='record_rollback'"))
    assert runs - runs_before == 20
    dupes = sum(n for (n,) in stack.rows(
        "select count(*) from decisions where rule='record_rollback' and reason='duplicate'"))
    assert dupes - dupes_before >= 4  # re-sends and the other peer's copies: journalled, not acted on
    # Both Alertmanagers of the pair delivered to both receivers.
    senders = {(name, json.loads(body)["externalURL"]) for name, r in stack.receivers.items()
               for (body,) in journal_rows(r.journal, "select body from notifications")}
    assert senders == {(n, f"http://am{i}.test:9093") for n in "ab" for i in range(2)}


def metric(receiver: Receiver, sample: str) -> float | None:
    """The value of one exposition line (name and labels exactly as exposed)."""
    text = requests.get(receiver.url + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return None


def test_a_receiver_killed_mid_action(stack):
    """The episode stays with the replica that claimed it: the other one never starts it, nor
    anything else on the locked target, while the lock lives; the killed one journals the run
    as interrupted when it comes back, and the counter feeding RemediationActionFailed says so."""
    labels = {"alertname": "AppDown", "remediation": "restart", "job": "trading-app",
              "instance": "app:5000"}
    begin = datetime.now(timezone.utc)
    stack.fire(labels, begin)
    wait_until(lambda: any(x.startswith("start ") for x in lines(stack.slow)), EVENTUALLY,
               what="the slow action to start")
    running = {name: r for name, r in stack.receivers.items()
               if any(x["rule"] == "slow_restart" and x["status"] == "running" for x in r.runs())}
    assert len(running) == 1
    (owner, victim), = running.items()
    other = stack.receivers["b" if owner == "a" else "a"]
    os.kill(victim.child.pid, signal.SIGKILL)
    victim.child.proc.wait(EVENTUALLY)

    client = redis.Redis(port=stack.redis_port)
    locks = list(client.scan_iter("pitwatch:remediation:lock:*"))
    assert len(locks) == 1 and client.pttl(locks[0]) > 30_000  # timeout + 60 s, still valid
    # Another series on the same target, while the Alertmanagers keep re-sending both.
    other_labels = {**labels, "instance": "app-2:5000"}
    other_begin = datetime.now(timezone.utc)
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        stack.fire(labels, begin)
        stack.fire(other_labels, other_begin)
        time.sleep(0.5)
    seen = journal_rows(other.journal, "select starts_at, reason from decisions "
                        "where rule='slow_restart' and alert_status='firing'")
    assert {reason for _, reason in seen} <= {"duplicate", "locked"}
    assert {instant(starts) for starts, _ in seen} == {begin, other_begin}  # both judged
    assert journal_rows(other.journal, "select count(*) from runs where rule='slow_restart'") == [(0,)]
    assert len([x for x in lines(stack.slow) if x.startswith("start ")]) == 1

    # The action was in its own process group: it runs to its end without its receiver.
    wait_until(lambda: any(x.startswith("end ") for x in lines(stack.slow)), EVENTUALLY,
               what="the orphaned action to finish")
    back = stack.start_receiver(owner)
    run, = [x for x in back.runs() if x["rule"] == "slow_restart"]
    assert run["status"] == "interrupted"
    assert "receiver stopped while the run was running" in run["output"]
    assert metric(back, 'pitwatch_remediation_actions_total{action="slow",result="interrupted"}') == 1.0
    # Neither replica starts it again afterwards, while the Alertmanagers keep re-sending.
    holds(lambda: len([x for x in lines(stack.slow) if x.startswith("start ")]) == 1, 3,
          what="a single start")
    now = datetime.now(timezone.utc)
    stack.fire(labels, begin, now)
    stack.fire(other_labels, other_begin, now)


def test_redis_down_journals_without_acting_and_recovers(stack):
    a, b = stack.receivers["a"], stack.receivers["b"]
    failed = 'alertmanager_notifications_failed_total{integration="webhook"}'

    def failures() -> float:
        total = 0.0
        for url in stack.am_urls:
            for line in requests.get(url + "/metrics", timeout=5).text.splitlines():
                if line.startswith(failed + " "):
                    total += float(line.split()[-1])
        return total

    # Deliveries that failed while a receiver was down (killed by another test) may still
    # be retried, with backoff: count from when the failure counter has stood still for
    # longer than a retry gap.
    def standing_still() -> tuple[float] | None:
        before = failures()
        time.sleep(5)
        return (before,) if failures() == before else None

    (failed_before,) = wait_until(standing_still, EVENTUALLY, what="the webhook failure counter to settle")
    stack.redis.stop()
    for r in (a, b):
        health = requests.get(r.url + "/healthz", timeout=5)
        assert health.status_code == 200
        assert health.json()["status"] == "degraded" and health.json()["acting"] is False
        assert "redis unavailable" in health.json()["error"]
        assert metric(r, "pitwatch_remediation_redis_up") == 0.0
        lint = subprocess.run(["promtool", "check", "metrics"], capture_output=True, text=True,
                              input=requests.get(r.url + "/metrics", timeout=5).text, timeout=30)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    done = len(lines(stack.record))
    runs_before = stack.rows("select count(*) from runs")
    labels = {"alertname": "BadRelease", "remediation": "rollback", "job": "trading-app",
              "instance": "app-redis:5000"}
    begin = datetime.now(timezone.utc)
    stack.fire(labels, begin)

    def held_back(r: Receiver) -> int:
        return journal_rows(r.journal, "select count(*) from decisions where reason="
                            "'redis_unavailable' and alertname='BadRelease'")[0][0]

    wait_until(lambda: held_back(a) >= 2 and held_back(b) >= 2, EVENTUALLY,
               what="both receivers to journal the notifications of both Alertmanagers")
    # Accepted, journalled, not acted on: a run is journalled before its 2xx, and none was.
    assert stack.rows("select count(*) from runs") == runs_before
    assert len(lines(stack.record)) == done
    assert failures() == failed_before  # every delivery was answered 2xx
    assert metric(a, 'pitwatch_remediation_suppressions_total{reason="redis_unavailable"}') >= 2

    stack.redis, _ = start_redis(stack.root, port=stack.redis_port)
    for r in (a, b):
        assert requests.get(r.url + "/healthz", timeout=5).json() == {"status": "ok"}
        assert metric(r, "pitwatch_remediation_redis_up") == 1.0
    # The held-back episode is re-sent and now acts; a new episode acts too; each once.
    new_labels = {**labels, "instance": "app-new:5000"}
    new_begin = datetime.now(timezone.utc)
    stack.fire(new_labels, new_begin)
    wait_until(lambda: len(lines(stack.record)) == done + 2, EVENTUALLY, what="both episodes to act")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        stack.fire(labels, begin)
        stack.fire(new_labels, new_begin)
        time.sleep(0.5)
    ran = lines(stack.record)[done:]
    assert sorted(instant(x.split()[1]) for x in ran) == [begin, new_begin]
