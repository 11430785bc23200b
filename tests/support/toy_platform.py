"""A small real platform for the remediation tests: release folders with a `current`
link, a real HTTP app whose /health follows its release and its database, a real
SQLite database, and stop/start/restart commands that really stop and start it."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pitwatch.core.procs import free_port, http_ok
from support.waiting import STARTUP, wait_until

HERE = Path(__file__).resolve().parent
APP = HERE / "platform_app.py"
CTL = HERE / "platform_ctl.py"
PY = sys.executable


def make_db(path: Path, rows: int = 500, newest: float | None = None) -> Path:
    newest = time.time() if newest is None else newest
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("create table if not exists trades (id integer primary key, symbol text, "
                 "qty int, price real, executed_at real)")
    conn.executemany("insert into trades (symbol, qty, price, executed_at) values (?, ?, ?, ?)",
                     [("ES", i % 5 + 1, 5000 + i * 0.25, newest - (rows - 1 - i))
                      for i in range(rows)])
    conn.commit()
    conn.close()
    return path


def damage(path: Path) -> None:
    """Overwrite pages past the header, as a failing disk would."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(path, "r+b") as fh:
        fh.seek(4096 * 2)
        fh.write(b"\xde\xad\xbe\xef" * 4096)


@dataclass
class Platform:
    root: Path
    port: int
    config: Path
    releases: Path
    db: Path
    state: Path
    cfg: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        return http_ok(self.url + "/health")

    def version(self) -> str | None:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                return json.load(r)["version"]
        except urllib.error.HTTPError as exc:
            return json.load(exc)["version"]
        except OSError:
            return None

    def write_trade(self) -> int:
        """One trade written through the app; its id."""
        req = urllib.request.Request(self.url + "/api/trades", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)["id"]

    def current(self) -> str:
        return os.readlink(self.releases / "current")

    def ctl_argv(self, verb: str) -> list[str]:
        """The service-manager command for ``verb`` (stop, slowstop, start, restart)."""
        return [PY, str(CTL), str(self.state), verb]

    def ctl(self, verb: str) -> None:
        subprocess.run(self.ctl_argv(verb), check=True, timeout=STARTUP + 60)

    def calls(self) -> list[str]:
        log = self.state / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def write_config(self, **sections) -> Path:
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(self.cfg.get(key), dict):
                self.cfg[key] = {**self.cfg[key], **value}
            else:
                self.cfg[key] = value
        self.config.write_text(yaml.safe_dump(self.cfg, sort_keys=False))
        return self.config

    def pitwatch(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([PY, "-m", "pitwatch", *args, "--config", str(self.config)],
                              capture_output=True, text=True, timeout=timeout)

    def stop(self) -> None:
        self.ctl("stop")


def make_platform(root: Path, versions: dict[str, bool | dict] | None = None, current: str = "v2",
                  compose: bool = False) -> Platform:
    """Releases (name -> healthy, or the release.json fields such as {"api": False}),
    `current` -> ``current``, the app started from it."""
    versions = versions or {"v1": True, "v2": True}
    root.mkdir(parents=True, exist_ok=True)
    releases = root / "releases"
    for name, release in versions.items():
        (releases / name).mkdir(parents=True)
        fields = release if isinstance(release, dict) else {"healthy": release}
        (releases / name / "release.json").write_text(json.dumps({"version": name, **fields}))
    (releases / "current").symlink_to(current)
    state = root / "state"
    state.mkdir()
    db = make_db(root / "trading.db")
    port = free_port()
    argv = [PY, str(APP), str(port), str(releases), str(db), str(state / "app.pid")]
    ctl = [PY, str(CTL), str(state)]
    platform: dict = {
        "app_url": f"http://127.0.0.1:{port}",
        "database": str(db),
        "releases_dir": str(releases),
        "restart_command": ctl + ["restart"],
        "stop_command": ctl + ["stop"],
        "start_command": ctl + ["start"],
        "app_pid_file": str(state / "app.pid"),
        # How long an unhealthy release is given: the tests switch to unhealthy releases
        # on purpose. The ctl script returns once the app listens, so a healthy release
        # answers at once.
        "health_timeout": "1.5s",
        # No watch after a switch unless a test asks for one: this app has no traffic.
        "deploy_watch": "0s",
    }
    if compose:
        env = root / "compose.env"
        env.write_text(f"# compose settings\nCOMPOSE_PROJECT_NAME=trading\nAPP_IMAGE_TAG={current}\n")
        argv += [str(env), "APP_IMAGE_TAG"]
        platform.update({"deploy": "compose", "compose_env_file": str(env),
                         "compose_file": str(root / "docker-compose.yml"),
                         "compose_command": ctl + ["compose"]})
    (state / "app.json").write_text(json.dumps(argv))
    p = Platform(root, port, root / "pitwatch.yml", releases, db, state,
                 {"platform": platform,
                  "backups": {"snapshots_dir": str(root / "snapshots"), "keep_min": 1}})
    p.write_config()
    p.ctl("start")
    wait_until(lambda: p.version() is not None, STARTUP, what="test app")
    return p
