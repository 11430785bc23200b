"""Child processes on 127.0.0.1: free ports, readiness, and stopping by pid.

Used by the demo stack, the drills and the tests. Every child gets its own process
group so that stopping it also stops whatever it started.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (OSError, urllib.error.URLError, ValueError):
        return False


def tcp_open(hostport: str, timeout: float = 1.0) -> bool:
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check, timeout: float, interval: float = 0.1, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def wait_http(url: str, timeout: float = 30.0, proc: "Child | None" = None) -> None:
    """Wait until ``url`` answers 2xx; fail early when ``proc`` has died."""
    _wait_alive(lambda: http_ok(url), url, timeout, proc)


def wait_tcp(hostport: str, timeout: float = 30.0, proc: "Child | None" = None) -> None:
    """Wait until ``hostport`` accepts connections; fail early when ``proc`` has died."""
    _wait_alive(lambda: tcp_open(hostport), hostport, timeout, proc)


def _wait_alive(check, what: str, timeout: float, proc: "Child | None") -> None:
    def ready() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.poll()} before {what} was "
                               f"ready{proc.tail()}")
        return check()

    wait_until(ready, timeout, what=what)


class Child:
    """A started process, its log file, and a stop() that leaves nothing behind."""

    def __init__(self, name: str, argv: list[str], log: Path | None = None,
                 env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log = Path(log) if log else None
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True,
            )
        finally:
            if self.log:
                out.close()
        self.pid = self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def tail(self, lines: int = 20) -> str:
        if not self.log or not self.log.exists():
            return ""
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return "\n" + "\n".join(text) if text else ""

    def stop(self, grace: float = 10.0) -> int | None:
        """TERM the process group, then KILL it after ``grace`` seconds."""
        if self.proc.poll() is None:
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # The leader may be gone while children of its group live on.
        _signal_group(self.pid, signal.SIGKILL)
        try:
            return self.proc.wait(5)
        except subprocess.TimeoutExpired:
            return None

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def holders(paths: list[Path]) -> list[tuple[int, str, str]]:
    """Processes with one of ``paths`` open, as (pid, name, path), from ``/proc/*/fd``.

    Compared by device and inode, so a file held under another name (hard link, a
    rename after it was opened) still counts. Processes whose fds this user may not
    read (another user's, without root) are not seen; this process is left out."""
    wanted: dict[tuple[int, int], str] = {}
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        wanted[(st.st_dev, st.st_ino)] = str(p)
    found: list[tuple[int, str, str]] = []
    if not wanted:
        return found
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(fd)
            except OSError:
                continue
            path = wanted.get((st.st_dev, st.st_ino))
            if path is not None:
                try:
                    name = (entry / "comm").read_text().strip()
                except OSError:
                    name = "?"
                found.append((int(entry.name), name, path))
                break
    return found
