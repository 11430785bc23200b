"""Controlling the trading app: restart, stop, start, and waiting for its /health.

Restart runs ``platform.restart_command``. Stop/start (needed while a database file
is swapped) run ``platform.stop_command`` / ``start_command`` when configured;
otherwise stop sends TERM (then KILL) to the pid in ``platform.app_pid_file`` and
start runs ``restart_command``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

from pitwatch.core.config import Platform
from pitwatch.core.procs import http_ok

COMMAND_TIMEOUT = 120


class AppControlError(RuntimeError):
    pass


def _run(argv: list[str], what: str) -> None:
    try:
        proc = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AppControlError(f"{what} {argv}: {exc}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-400:]
        raise AppControlError(f"{what} {argv} exited {proc.returncode}: {tail}")


def health_url(platform: Platform) -> str:
    return platform.app_url + platform.health_path


def wait_healthy(platform: Platform, timeout: float | None = None) -> bool:
    """True once /health answers 2xx; False after ``timeout`` (default health_timeout)."""
    deadline = time.monotonic() + (platform.health_timeout if timeout is None else timeout)
    url = health_url(platform)
    while True:
        if http_ok(url, timeout=2):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def restart(platform: Platform) -> None:
    if not platform.restart_command:
        raise AppControlError("platform.restart_command is not set")
    _run(platform.restart_command, "restart_command")


def stop(platform: Platform, grace: float = 15.0) -> None:
    if platform.stop_command:
        _run(platform.stop_command, "stop_command")
        return
    if platform.app_pid_file is None:
        raise AppControlError("cannot stop the app: set platform.stop_command or app_pid_file")
    try:
        pid = int(platform.app_pid_file.read_text().strip())
    except (OSError, ValueError):
        return  # no pid file: nothing runs
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def alive(pid: int) -> bool:
    """Running and not a zombie waiting for a parent that does not reap."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def start(platform: Platform) -> None:
    if platform.start_command:
        _run(platform.start_command, "start_command")
    else:
        restart(platform)
