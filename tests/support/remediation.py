"""The remediator's side of the tests: Alertmanager webhook bodies, a real
`pitwatch remediator` process, its configuration and its journal."""
from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import requests

from pitwatch.core.procs import Child, http_ok
from support.waiting import STARTUP, wait_until

PY = sys.executable
TOKEN = "s3cret-token-for-tests"


def notification(alerts: list[dict], status: str | None = None, **extra) -> dict:
    """An Alertmanager webhook v4 body."""
    status = status or ("firing" if any(a["status"] == "firing" for a in alerts) else "resolved")
    return {"version": "4", "receiver": "remediation", "status": status,
            "groupKey": '{}:{alertname="X"}', "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://am", "truncatedAlerts": 0,
            "alerts": alerts, **extra}


def alert(name: str = "BadRelease", status: str = "firing", fingerprint: str = "fp01",
          starts_at: str = "2026-11-25T10:00:00.123456789Z", **labels) -> dict:
    return {"status": status, "labels": {"alertname": name, **labels},
            "annotations": {"summary": "s"}, "startsAt": starts_at,
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph",
            "fingerprint": fingerprint}


class Receiver:
    """A real `pitwatch remediator` process."""

    def __init__(self, config: Path, port: int, log: Path):
        self.port = port
        self.config = config
        self.child = Child("remediator", [PY, "-m", "pitwatch", "remediator", "--config", config],
                           log=log)
        wait_until(self.ready, STARTUP, what="remediator")

    def ready(self) -> bool:
        if self.child.poll() is not None:
            raise RuntimeError(f"remediator exited {self.child.poll()}{self.child.tail()}")
        return http_ok(f"http://127.0.0.1:{self.port}/healthz")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def post(self, body, token: str | None = TOKEN, raw: bytes | None = None, headers=None):
        h = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else json.dumps(body).encode()
        return requests.post(self.url + "/alerts", data=data, headers=h, timeout=30)

    def runs(self) -> list[dict]:
        return requests.get(self.url + "/actions", headers={"Authorization": f"Bearer {TOKEN}"},
                            timeout=30).json()["runs"]

    def stop(self) -> None:
        self.child.stop()


def remediation_config(root: Path, port: int, actions: dict | None = None,
                       policy: list | None = None, **extra) -> dict:
    (root / "token").write_text(TOKEN + "\n")
    return {"listen": f"127.0.0.1:{port}", "token_file": str(root / "token"),
            "journal": str(root / "journal" / "journal.db"), "actions": actions or {},
            "policy": policy or [], **extra}


def journal_rows(path: Path, sql: str, args: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()
