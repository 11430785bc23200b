"""Start, stop and restart the demo app as a service manager would: by its pid file.

``restart(config)`` is what the demo config's ``restart_command`` runs
(``pitwatch demo restart-app --config FILE``): TERM the running app (KILL after a
grace period), start a new detached one that reads ``releases/current`` afresh, and
wait for its /health. The new process is in its own session, so a remediation
timeout that kills the restart command's process group leaves the app alone.
Between the stop and the start nothing listens: requests fail.

``reload(config)`` is the demo's ``reload_command`` (``pitwatch demo reload-app``),
what deploys and rollbacks use: SIGHUP to the gunicorn master, which keeps the
listening socket, starts new workers on the new release and lets the old ones finish
their requests. It returns once no old worker is left and /health reports the
release ``current`` points at.

Litestream is a second service (``run/litestream.pid``). The demo's ``stop_command``
and ``start_command`` (``--litestream``) stop and start it with the app, as a real
platform's must: a restore renames a new file over the database, and a Litestream left
running keeps replicating the replaced one.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from pitwatch.core import binaries
from pitwatch.core.config import Config
from pitwatch.core.procs import http_ok
from pitwatch.demo import releases
from pitwatch.scrape import litestream_addr


@dataclass
class RestartResult:
    old_pid: int | None
    new_pid: int
    healthy: bool
    seconds: float
    message: str


def app_log(config: Config) -> Path:
    base = config.source.parent if config.source else Path.cwd()
    return base / "logs" / "app.log"


def running_pid(config: Config) -> int | None:
    """The pid in ``app_pid_file`` if that process is alive and is a pitwatch demo app."""
    pid_file = config.platform.app_pid_file
    try:
        pid = int(pid_file.read_text().strip()) if pid_file else 0
    except (OSError, ValueError):
        return None
    try:
        argv = psutil.Process(pid).cmdline()
    except (psutil.Error, ValueError):
        return None
    # A recycled pid must never be killed by mistake: it must be `... demo app ...`.
    is_app = any(a == "demo" and b == "app" for a, b in zip(argv, argv[1:]))
    return pid if is_app else None


def litestream_pid_file(config: Config) -> Path:
    base = config.source.parent if config.source else Path.cwd()
    return base / "run" / "litestream.pid"


def litestream_pid(config: Config) -> int | None:
    """The pid in run/litestream.pid if that process is alive and is `litestream replicate`."""
    try:
        pid = int(litestream_pid_file(config).read_text().strip())
        argv = psutil.Process(pid).cmdline()
    except (OSError, ValueError, psutil.Error):
        return None
    return pid if "replicate" in argv and any("litestream" in a for a in argv[:1]) else None


def stop(config: Config, grace: float = 10.0) -> int | None:
    """Stop the running app (TERM, then KILL); return its pid, or None if none ran."""
    return _terminate(running_pid(config), config.platform.app_pid_file, grace)


def stop_litestream(config: Config, grace: float = 10.0) -> int | None:
    return _terminate(litestream_pid(config), litestream_pid_file(config), grace)


def _terminate(pid: int | None, pid_file: Path | None, grace: float) -> int | None:
    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGTERM)
        if not _wait_gone(proc, grace):
            proc.kill()
            _wait_gone(proc, 5)
    except psutil.NoSuchProcess:
        pass
    if pid_file and pid_file.exists() and pid_file.read_text().strip() == str(pid):
        pid_file.unlink()
    return pid


def start_litestream(config: Config, timeout: float = 30.0) -> int:
    """Start a detached `litestream replicate`; wait for its metrics port when it has one."""
    bk = config.backups
    base = litestream_pid_file(config).parent.parent
    (base / "logs").mkdir(exist_ok=True)
    with open(base / "logs" / "litestream.log", "ab") as out:
        proc = subprocess.Popen(
            [binaries.find("litestream", bk.litestream_binary), "replicate", "-config",
             str(bk.litestream_config)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=base)
    write_pid(litestream_pid_file(config), proc.pid)
    addr = litestream_addr(config)
    deadline = time.monotonic() + timeout
    while addr and time.monotonic() < deadline and proc.poll() is None:
        if http_ok(f"http://{addr}/metrics", timeout=2):
            break
        time.sleep(0.1)
    return proc.pid


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(pid))
    tmp.replace(path)


def _wait_gone(proc: psutil.Process, timeout: float) -> bool:
    """Wait for exit. Not our child, so not ours to reap: a zombie counts as gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def start(config: Config, timeout: float = 30.0) -> tuple[subprocess.Popen, bool]:
    """Start a detached app; return it and whether /health answered 200 in time."""
    if config.source is None:
        raise ValueError("the config must be loaded from a file to start the app")
    log = app_log(config)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pitwatch", "demo", "app", "--config", str(config.source)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=config.source.parent)
    health = config.platform.app_url + config.platform.health_path
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc, False
        if http_ok(health, timeout=2):
            return proc, True
        time.sleep(0.1)
    return proc, False


def restart(config: Config, timeout: float = 30.0, litestream: bool = False) -> RestartResult:
    """Restart the app; with ``litestream`` stop both, then start Litestream first."""
    began = time.monotonic()
    old = stop(config)
    if litestream:
        stop_litestream(config)
        start_litestream(config)
    proc, healthy = start(config, timeout)
    took = time.monotonic() - began
    if healthy:
        msg = f"demo app restarted: pid {old or '-'} -> {proc.pid}, healthy after {took:.1f}s"
    elif proc.poll() is not None:
        msg = f"demo app exited with {proc.returncode} at start; see {app_log(config)}"
    else:
        msg = f"demo app (pid {proc.pid}) not healthy after {timeout:.0f}s; see {app_log(config)}"
    return RestartResult(old, proc.pid, healthy, took, msg)


def serving(config: Config) -> str | None:
    """The release /health reports, or None when the app does not answer 200."""
    url = config.platform.app_url + config.platform.health_path
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.load(r).get("version") if r.status == 200 else None
    except (OSError, ValueError):
        return None


def reload(config: Config, timeout: float = 30.0) -> RestartResult:
    """Gracefully reload the running app onto ``releases/current``; start it if none runs
    (as ``systemctl reload-or-restart`` would)."""
    began = time.monotonic()
    pid = running_pid(config)
    if pid is None:
        proc, healthy = start(config, timeout)
        took = time.monotonic() - began
        msg = (f"no demo app was running; started pid {proc.pid}, healthy after {took:.1f}s"
               if healthy else f"no demo app was running and pid {proc.pid} did not become "
                               f"healthy; see {app_log(config)}")
        return RestartResult(None, proc.pid, healthy, took, msg)
    want = releases.current(config.platform.releases_dir).version
    master = psutil.Process(pid)
    old = {c.pid for c in master.children()}
    master.send_signal(signal.SIGHUP)
    deadline = began + timeout
    while time.monotonic() < deadline:
        try:
            workers = {c.pid for c in master.children()}
        except psutil.NoSuchProcess:
            break
        # Once no old worker is left, whichever worker answers runs the new release.
        if not workers & old and serving(config) == want:
            took = time.monotonic() - began
            return RestartResult(pid, pid, True, took,
                                 f"demo app reloaded: pid {pid} serves {want} with workers "
                                 f"{sorted(workers)} (were {sorted(old)}) after {took:.1f}s")
        time.sleep(0.1)
    return RestartResult(pid, pid, False, time.monotonic() - began,
                         f"demo app (pid {pid}) not serving {want} with new workers after "
                         f"{timeout:.0f}s; see {app_log(config)}")
