"""The action runner: argv only, inert environment values, process-group timeout,
bounded output."""
from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

from pitwatch.core import exits
from pitwatch.remediation import runner
from pitwatch.remediation.alerts import parse
from support.remediation import alert, notification
from support.waiting import EVENTUALLY, wait_until

PY = sys.executable
DUMP = ("import json, os, sys; json.dump({k: v for k, v in os.environ.items()}, "
        "open(sys.argv[1], 'w'))")


def dumped_env(tmp_path, labels: dict, annotations: dict | None = None):
    a = alert(**labels)
    if annotations is not None:
        a["annotations"] = annotations
    # Through the parser, as the receiver would see it.
    a = parse(json.dumps(notification([a]))).alerts[0].to_dict()
    out = tmp_path / "env.json"
    result = runner.run([PY, "-c", DUMP, str(out)], a, timeout=20)
    assert result.status == "success", result.output
    return json.loads(out.read_text()), a


def test_hostile_label_values_arrive_as_inert_strings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hostile = {
        "cmd": "$(touch pwned)",
        "semi": "; rm -rf / ; touch pwned",
        "tick": "`touch pwned`",
        "nl": "a\nb\r\nc; touch pwned",
        "quote": "'\"; touch pwned #",
        "glob": "* ?",
    }
    env, _ = dumped_env(tmp_path, hostile, {"description": "$(touch pwned) `id`"})
    for name, value in hostile.items():
        assert env[f"PITWATCH_LABEL_{name.upper()}"] == value
    assert env["PITWATCH_ANNOTATION_DESCRIPTION"] == "$(touch pwned) `id`"
    assert env["PITWATCH_ALERTNAME"] == "BadRelease"
    assert not list(tmp_path.rglob("pwned"))


def test_environment_is_sanitised(tmp_path, monkeypatch):
    monkeypatch.setenv("PITWATCH_TEST_SECRET", "do-not-leak")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    env, a = dumped_env(tmp_path, {"my-label.x": "1", "ünï": "2", "PATH": "/evil"})
    assert "do-not-leak" not in json.dumps(env)
    assert env["PITWATCH_LABEL_MY_LABEL_X"] == "1"
    assert env["PITWATCH_LABEL__N_"] == "2"
    assert all(k.isascii() for k in env)
    assert env["PATH"] == os.environ["PATH"]  # a label cannot replace an inherited variable
    assert env["PITWATCH_LABEL_PATH"] == "/evil"
    # The alert file is gone after the run, and held the whole alert meanwhile.
    assert not os.path.exists(env["PITWATCH_ALERT_FILE"])


def test_a_huge_label_does_not_stop_the_action(tmp_path):
    huge = "A" * (200 * 1024)
    many = {f"l{i}": chr(65 + i) * (100 * 1024) for i in range(20)}
    script = ("import json, os, sys; a = json.load(open(os.environ['PITWATCH_ALERT_FILE'])); "
              "json.dump({'file': a['labels'], 'env': {k: v for k, v in os.environ.items() "
              "if k.startswith('PITWATCH_')}}, open(sys.argv[1], 'w'))")
    a = alert(huge=huge, nul="x\x00y", **many)
    out = tmp_path / "seen.json"
    result = runner.run([PY, "-c", script, str(out)], a, timeout=20)
    assert result.status == "success", result.output
    seen = json.loads(out.read_text())
    assert seen["file"]["huge"] == huge  # the file has everything
    assert seen["file"]["l19"] == many["l19"]
    env = seen["env"]
    assert env["PITWATCH_LABEL_HUGE"] == huge[:runner.VALUE_LIMIT]
    assert env["PITWATCH_LABEL_NUL"] == "xy"
    assert sum(len(k) + len(v) for k, v in env.items()) <= runner.ENV_BUDGET
    cut = env["PITWATCH_ENV_TRUNCATED"].split(",")
    assert cut and not any(name in env for name in cut)
    kept = [k for k in env if k.startswith("PITWATCH_LABEL_L")]
    assert sorted(kept + cut) == sorted(f"PITWATCH_LABEL_L{i}" for i in range(20))


GROUP = r"""
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a leader that ignores TERM
child = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
open(sys.argv[1], "w").write(f"{os.getpid()} {child.pid}")
print("started", flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow  # waits out real timeouts and grace periods
def test_timeout_kills_the_whole_process_group(tmp_path):
    pids = tmp_path / "pids"
    # Long enough for the leader to start its child and say so on a loaded machine.
    timeout, grace = 5.0, 1.0
    started = time.monotonic()
    result = runner.run([PY, "-c", GROUP, str(pids)], alert(), timeout=timeout, grace=grace)
    took = time.monotonic() - started
    assert result.status == "timeout" and result.exit_code == -signal.SIGKILL
    assert "started" in result.output
    assert timeout + grace - 0.5 < took < timeout + grace + 7.5
    leader, grandchild = map(int, pids.read_text().split())
    wait_until(lambda: not _alive(leader) and not _alive(grandchild), EVENTUALLY,
               what="the leader and its child to be gone")


def test_output_is_bounded_keeping_head_and_tail(tmp_path):
    script = "import sys; sys.stdout.write('HEAD' + 'x' * 3_000_000 + 'TAIL'); sys.exit(3)"
    result = runner.run([PY, "-c", script], alert(), timeout=30)
    assert result.status == "failure" and result.exit_code == 3
    assert len(result.output) <= runner.OUTPUT_LIMIT + 100
    assert result.output.startswith("HEAD") and result.output.endswith("TAIL")
    assert "bytes dropped" in result.output


def test_a_daemon_left_running_does_not_hold_the_run(tmp_path):
    # A restart command leaves the app running with our pipe as its stdout.
    script = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', "
              "'import time; time.sleep(60)']); open(sys.argv[1], 'w').write(str(p.pid)); "
              "print('restarted')")
    pidfile = tmp_path / "daemon"
    started = time.monotonic()
    result = runner.run([PY, "-c", script, str(pidfile)], alert(), timeout=30)
    try:
        assert result.status == "success" and "restarted" in result.output
        assert time.monotonic() - started < 10
        assert _alive(int(pidfile.read_text()))  # not ours to kill
    finally:
        os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_the_degraded_exit_code_is_its_own_result():
    # A restore whose replication did not resume: done, but not a plain success.
    result = runner.run([PY, "-c", f"import sys; sys.exit({exits.DEGRADED})"], alert(), timeout=30)
    assert result.status == "degraded" and result.exit_code == exits.DEGRADED


def test_a_missing_program_is_a_failure_not_a_crash():
    result = runner.run(["/nonexistent/action"], alert(), timeout=5)
    assert result.status == "failure" and "cannot start" in result.output
