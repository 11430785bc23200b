"""Running an action: an argv list (never a shell), alert data as inert environment
values, a whole-process-group timeout and bounded output.

Linux refuses an ``execve`` whose single environment string exceeds 128 KiB (and the
whole environment shares one limit), so each value is cut to ``VALUE_LIMIT`` and the
total to ``ENV_BUDGET``; the complete alert is always in ``PITWATCH_ALERT_FILE``.
"""
from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pitwatch.core import exits
from pitwatch.core.config import ENV_OVERRIDES

VALUE_LIMIT = 4096
ENV_BUDGET = 64 * 1024
OUTPUT_LIMIT = 64 * 1024  # kept: the first and the last half
# What an action inherits from the receiver; everything else is dropped. The config's
# file-path overrides pass too: the built-in actions load the same config.
PASS_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV",
                *ENV_OVERRIDES)


@dataclass(frozen=True)
class Result:
    status: str  # success | failure | timeout
    exit_code: int | None
    output: str
    duration: float


def env_name(name: str) -> str:
    """A label name as an environment variable name: upper case, [A-Z0-9_] only."""
    return re.sub(r"[^A-Z0-9_]", "_", name.upper())[:64]


def _value(value: str) -> str:
    value = value.replace("\x00", "")  # the only byte an environment cannot hold
    if len(value.encode("utf-8", "surrogatepass")) > VALUE_LIMIT:
        value = value.encode("utf-8", "surrogatepass")[:VALUE_LIMIT].decode("utf-8", "ignore")
    return value.encode("utf-8", "replace").decode("utf-8")


def alert_env(alert: dict, extra: dict[str, str]) -> dict[str, str]:
    """The environment of an action: a few inherited variables, then the alert's data."""
    env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
    env.update(extra)
    fields = {
        "PITWATCH_ALERTNAME": alert.get("labels", {}).get("alertname", ""),
        "PITWATCH_STATUS": alert.get("status", ""),
        "PITWATCH_FINGERPRINT": alert.get("fingerprint", ""),
        "PITWATCH_STARTS_AT": alert.get("startsAt", ""),
    }
    for prefix, key in (("PITWATCH_LABEL_", "labels"), ("PITWATCH_ANNOTATION_", "annotations")):
        for name, value in sorted(alert.get(key, {}).items()):
            fields.setdefault(prefix + env_name(name), value)  # first spelling wins
    budget = ENV_BUDGET - sum(len(k) + len(v) + 2 for k, v in env.items())
    cut = []
    for name, value in fields.items():
        value = _value(value)
        cost = len(name) + len(value.encode()) + 2
        if cost > budget:
            cut.append(name)
            continue
        budget -= cost
        env.setdefault(name, value)
    if cut:
        env["PITWATCH_ENV_TRUNCATED"] = ",".join(cut)[:1024]
    return env


class _Output:
    """Keeps the head and the tail of a stream, counting what was dropped between."""

    def __init__(self, limit: int = OUTPUT_LIMIT):
        self.half = limit // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail += data
        if len(self.tail) > self.half:
            self.dropped += len(self.tail) - self.half
            del self.tail[:len(self.tail) - self.half]

    def text(self) -> str:
        mid = f"\n[... {self.dropped} bytes dropped ...]\n" if self.dropped else ""
        return (bytes(self.head).decode("utf-8", "replace") + mid
                + bytes(self.tail).decode("utf-8", "replace"))


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run(argv: list[str], alert: dict, timeout: float, extra_env: dict[str, str] | None = None,
        workdir: Path | None = None, grace: float = 5.0) -> Result:
    """Run ``argv`` in its own process group; on timeout TERM the group, then KILL it."""
    started = time.monotonic()
    with tempfile.NamedTemporaryFile("w", prefix="pitwatch-alert-", suffix=".json",
                                     dir=workdir, delete=False) as fh:
        json.dump(alert, fh)
        alert_file = fh.name
    env = alert_env(alert, {**(extra_env or {}), "PITWATCH_ALERT_FILE": alert_file})
    out = _Output()
    try:
        try:
            proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True, close_fds=True)
        except OSError as exc:
            return Result("failure", None, f"cannot start {argv[0]!r}: {exc}",
                          time.monotonic() - started)
        status = _pump(proc, out, started + timeout, grace)
        code = proc.returncode
        if status is None:
            status = {0: "success", exits.DEGRADED: "degraded"}.get(code, "failure")
        return Result(status, code, out.text(), time.monotonic() - started)
    finally:
        Path(alert_file).unlink(missing_ok=True)


def _pump(proc: subprocess.Popen, out: _Output, deadline: float, grace: float) -> str | None:
    """Read output until the process exits or the deadline; 'timeout' if it was killed.

    Reading stops when the leader exits: a daemon it left behind (a restarted app) may
    hold the pipe open forever and is not ours to wait for.
    """
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    killed_at = None
    eof = False
    try:
        while True:
            if eof:
                time.sleep(0.05)
            elif select.select([fd], [], [], 0.05)[0]:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    data = None
                if data:
                    out.add(data)
                elif data == b"":
                    eof = True  # every writer closed the pipe; the leader may still run
            if proc.poll() is not None:
                while True:  # drain what is already there
                    try:
                        data = os.read(fd, 65536)
                    except (BlockingIOError, OSError):
                        break
                    if not data:
                        break
                    out.add(data)
                if killed_at is not None:
                    _kill_group(proc.pid, signal.SIGKILL)  # stragglers of the group
                    return "timeout"
                return None
            now = time.monotonic()
            if killed_at is None and now >= deadline:
                _kill_group(proc.pid, signal.SIGTERM)
                killed_at = now
            elif killed_at is not None and now >= killed_at + grace:
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
                return "timeout"
    finally:
        proc.stdout.close()
