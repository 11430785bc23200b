"""Stop/start/restart of the test app by pid file, as a platform's service manager would.

    python remediation_ctl.py STATE_DIR stop|slowstop|start|restart
    python remediation_ctl.py STATE_DIR compose [-f FILE] up -d SERVICE   (compose stand-in
        for `docker compose`: records its argv, then restarts the app)

STATE_DIR/app.json holds the app's argv; every call is appended to STATE_DIR/calls.log.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

state = Path(sys.argv[1])
verb = sys.argv[2]
with open(state / "calls.log", "a") as fh:
    fh.write(" ".join(sys.argv[2:]) + "\n")
argv = json.loads((state / "app.json").read_text())
pid_file = state / "app.pid"


def stop():
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[1].startswith("Z"):
                    break
        except (ProcessLookupError, FileNotFoundError):
            break
        time.sleep(0.05)
    pid_file.unlink(missing_ok=True)


def start():
    log = open(state / "app.log", "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)
    for _ in range(400):  # until it wrote its pid: a later stop must find it
        if pid_file.exists():
            return
        if proc.poll() is not None:
            sys.exit(f"the app exited with {proc.returncode}")
        time.sleep(0.05)
    sys.exit("the app did not start")


if verb == "stop":
    stop()
elif verb == "slowstop":  # a service manager that takes its time
    time.sleep(1.0)
    stop()
elif verb == "start":
    start()
elif verb in ("restart", "compose"):
    stop()
    start()
else:
    sys.exit(f"unknown verb {verb}")
