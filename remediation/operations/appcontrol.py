"""Controlling the trading app: restart, stop, start, and waiting until it is healthy.

Healthy means the health URL answers 2xx *and* every smoke URL (``smoke.urls``, the
exporter's probe) answers an expected status in the same round: a release whose API
answers 404 while /health stays green is not healthy.

Restart runs ``platform.restart_command``. Switching releases runs
``platform.reload_command`` when set (a graceful reload: the app server keeps its
listening socket while new workers take over, so no request fails), else the restart
command. Stop/start (needed while a database file
is swapped) run ``platform.stop_command`` / ``start_command`` when configured;
otherwise stop sends TERM (then KILL) to the pid in ``platform.app_pid_file`` and
start runs ``restart_command``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

from typing import Callable

from pitwatch.core.config import Platform, Smoke
from pitwatch.core.smoke import Target, probe, targets_from_config

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


def health_targets(platform: Platform, smoke: Smoke | None = None) -> list[Target]:
    """The health URL (any 2xx), then the configured smoke URLs."""
    url = health_url(platform)
    targets = [Target(url, platform.health_path, expect_status=tuple(range(200, 300)))]
    if smoke is not None and smoke.urls:
        targets += [t for t in targets_from_config(smoke, platform) if t.url != url]
    return targets


def wait_healthy(platform: Platform, smoke: Smoke | None = None, timeout: float | None = None,
                 say: Callable[[str], None] | None = None) -> bool:
    """True once every health target passes in one round; False after ``timeout``
    (default health_timeout), saying which target failed and why."""
    deadline = time.monotonic() + (platform.health_timeout if timeout is None else timeout)
    targets = health_targets(platform, smoke)
    while True:
        failed = next(((t, r) for t in targets if not (r := probe(t)).success), None)
        if failed is None:
            return True
        if time.monotonic() > deadline:
            if say:
                say(f"  not healthy: {failed[0].label}: {failed[1].error}")
            return False
        time.sleep(0.2)


def restart(platform: Platform) -> None:
    if not platform.restart_command:
        raise AppControlError("platform.restart_command is not set")
    _run(platform.restart_command, "restart_command")


def reload(platform: Platform) -> None:
    """Make the app serve the release now switched to: reload_command, else restart."""
    if platform.reload_command:
        _run(platform.reload_command, "reload_command")
    else:
        restart(platform)


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
