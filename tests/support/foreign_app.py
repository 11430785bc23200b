"""A foreign platform for the adoption tests: the trading journal of ``journal_app.py``
(its own metrics, naive text timestamps, no login, a daily import) behind a reverse proxy
that adds the security headers, each in its own process on 127.0.0.1, stopped by pid.

The journal is not shaped for pitwatch; pitwatch has to be configured to it.
"""
from __future__ import annotations

import sys
from pathlib import Path

from pitwatch.core.procs import Child, free_port, wait_http
from support.waiting import STARTUP

SCRIPT = Path(__file__).resolve().parent / "journal_app.py"
# Quoted in URLs: the contract month is part of the name.
CHART_SYMBOL = "MNQ SEP25"


class Journal:
    """The journal app and its proxy, started; ``stop()`` ends both."""

    def __init__(self, root: Path, redis_url: str | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.database = self.root / "journal.db"
        self.fault_file = self.root / "store-fault"
        self.app_port, self.proxy_port = free_port(), free_port()
        self.app_url = f"http://127.0.0.1:{self.app_port}"
        self.proxy_url = f"http://127.0.0.1:{self.proxy_port}"
        argv = [sys.executable, SCRIPT, "app", "--db", self.database, "--port", self.app_port,
                "--fault-file", self.fault_file]
        if redis_url:
            argv += ["--redis", redis_url]
        self.children: list[Child] = []
        try:
            self.app = self._start("journal-app", argv, self.app_url + "/health")
            self.proxy = self._start(
                "journal-proxy",
                [sys.executable, SCRIPT, "proxy", "--port", self.proxy_port, "--upstream", self.app_url],
                self.proxy_url + "/health")
        except BaseException:
            self.stop()
            raise

    def _start(self, name: str, argv: list, ready: str) -> Child:
        child = Child(name, argv, log=self.root / f"{name}.log", cwd=self.root)
        self.children.append(child)
        wait_http(ready, timeout=STARTUP, proc=child)
        return child

    def break_api(self) -> None:
        """Every /api route answers 500 from now on."""
        self.fault_file.write_text("store layer down\n")

    def heal_api(self) -> None:
        self.fault_file.unlink(missing_ok=True)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
