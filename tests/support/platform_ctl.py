"""Stop/start/restart of the test app by pid file, as a platform's service manager would.

    python platform_ctl.py STATE_DIR stop|slowstop|start|restart
    python platform_ctl.py STATE_DIR compose [-f FILE] up -d SERVICE   (compose stand-in
        for `docker compose`: records its argv, then restarts the app)

STATE_DIR/app.json holds the app's argv; every call is appended to STATE_DIR/calls.log.
With STATE_DIR/litestream.json (Litestream's argv) the platform runs Litestream as a
service beside the app, and stop/start/restart cover both, as `systemctl stop trading
litestream` would.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# Ceilings only, generous for a loaded machine: stop and start return as soon as done.
STOP_WITHIN = 60.0
START_WITHIN = 120.0


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].startswith("Z")
    except (ProcessLookupError, FileNotFoundError):
        return True


def stop(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return
    deadline = time.monotonic() + STOP_WITHIN
    while not _gone(pid):
        if time.monotonic() > deadline:  # a stop must free the port for the next start
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    pid_file.unlink(missing_ok=True)


def start(state: Path, argv: list[str], pid_file: Path) -> None:
    log = open(state / "app.log", "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)
    deadline = time.monotonic() + START_WITHIN
    while not pid_file.exists():  # written once it listens: a later stop must find it
        if proc.poll() is not None:
            sys.exit(f"the app exited with {proc.returncode}")
        if time.monotonic() > deadline:
            sys.exit("the app did not start")
        time.sleep(0.05)


def start_litestream(state: Path) -> None:
    argv = json.loads((state / "litestream.json").read_text())
    log = open(state / "litestream.log", "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)
    (state / "litestream.pid").write_text(str(proc.pid))


def main(argv: list[str]) -> None:
    state = Path(argv[1])
    verb = argv[2]
    with open(state / "calls.log", "a") as fh:
        fh.write(" ".join(argv[2:]) + "\n")
    app_argv = json.loads((state / "app.json").read_text())
    pid_file = state / "app.pid"
    litestream = (state / "litestream.json").exists()
    stops, starts = verb in ("stop", "slowstop", "restart", "compose"), \
        verb in ("start", "restart", "compose")
    if not (stops or starts):
        sys.exit(f"unknown verb {verb}")
    if verb == "slowstop":  # a service manager that takes its time
        time.sleep(1.0)
    if stops:
        stop(pid_file)
        if litestream:
            stop(state / "litestream.pid")
    if starts:
        if litestream:
            start_litestream(state)
        start(state, app_argv, pid_file)

if __name__ == "__main__":
    main(sys.argv)
