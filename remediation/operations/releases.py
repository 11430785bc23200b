"""Switching releases: rollback and deploy, in two flavours.

``releases``: ``<releases_dir>/<version>/`` folders and a ``current`` symlink, switched
atomically (a new link renamed over the old one); the reload command (else the restart
command) then makes the app serve ``current``. Versions sort naturally (v1.9 < v1.10).

``compose``: the image tag is the ``compose_tag_variable`` line of the compose
``.env`` (rewritten atomically), applied with ``<compose_command> up -d <service>``.
Every tag set is appended to ``<.env>.history``: the older releases to fall back on.
"""
from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from pitwatch.core import market
from pitwatch.core.config import Platform, Smoke

from pitwatch.remediation.operations import appcontrol as app
from pitwatch.remediation.operations import deploys
from pitwatch.remediation.operations.deploys import Record
from pitwatch.remediation.operations.fencing import Fenced, fenced
from pitwatch.remediation.operations.watch import Verdict, Watch

CURRENT = "current"


class ReleaseError(RuntimeError):
    pass


def version_key(name: str) -> list:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name) if p]


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of either."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    if path.exists():
        os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)
    fsync_dir(path.parent)


class Folders:
    """Release folders + the ``current`` symlink."""

    def __init__(self, platform: Platform):
        if platform.releases_dir is None:
            raise ReleaseError("platform.releases_dir is not set")
        self.platform = platform
        self.dir = platform.releases_dir

    def all(self) -> list[str]:
        names = [p.name for p in self.dir.iterdir()
                 if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")]
        return sorted(names, key=version_key)

    def current(self) -> str | None:
        link = self.dir / CURRENT
        return os.path.basename(os.readlink(link).rstrip("/")) if link.is_symlink() else None

    def older_than(self, version: str | None) -> list[str]:
        """Newest first."""
        names = self.all()
        if version is None:
            return names[::-1]
        return [n for n in names if version_key(n) < version_key(version)][::-1]

    def exists(self, version: str) -> bool:
        return (self.dir / version).is_dir()

    def set(self, version: str) -> None:
        if not self.exists(version):
            raise ReleaseError(f"no release folder {self.dir / version}")
        tmp = self.dir / f".{CURRENT}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(version, tmp)  # relative: the tree may be moved or mounted elsewhere
        try:
            with fenced(self.dir):
                os.replace(tmp, self.dir / CURRENT)
        except Fenced as exc:
            tmp.unlink(missing_ok=True)
            raise ReleaseError(str(exc)) from None
        fsync_dir(self.dir)

    def apply(self) -> None:
        app.reload(self.platform)


class Compose:
    """The image tag in the compose ``.env``."""

    def __init__(self, platform: Platform):
        self.platform = platform
        self.env = platform.compose_env_file
        self.var = platform.compose_tag_variable
        self.history = self.env.with_name(self.env.name + ".history")
        self._line = re.compile(rf"^\s*(export\s+)?{re.escape(self.var)}\s*=")

    def current(self) -> str | None:
        try:
            lines = self.env.read_text().splitlines()
        except FileNotFoundError:
            return None
        for line in lines:
            if self._line.match(line):
                return line.split("=", 1)[1].strip().strip("'\"")
        return None

    def _history(self) -> list[str]:
        try:
            return [ln.split()[-1] for ln in self.history.read_text().splitlines() if ln.strip()]
        except FileNotFoundError:
            return []

    def all(self) -> list[str]:
        """Every tag set so far, in the order of its first deployment."""
        order: list[str] = []
        for tag in self._history() + [t for t in [self.current()] if t]:
            if tag not in order:
                order.append(tag)
        return order

    def older_than(self, version: str | None) -> list[str]:
        """Tags first deployed before ``version`` was, newest first.

        First deployments count, not rollbacks: after v3 was rolled back to v2, v3 is
        still newer than v2.
        """
        order = self.all()
        if version in order:
            order = order[:order.index(version)]
        return order[::-1]

    def exists(self, version: str) -> bool:
        return bool(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", version))

    def set(self, version: str) -> None:
        if not self.exists(version):
            raise ReleaseError(f"{version!r} is not a valid image tag")
        try:
            lines = self.env.read_text().splitlines()
        except FileNotFoundError:
            lines = []
        new = f"{self.var}={version}"
        replaced = False
        for i, line in enumerate(lines):
            if self._line.match(line):
                lines[i], replaced = new, True
        if not replaced:
            lines.append(new)
        before = self.current()
        try:
            with fenced(self.env.parent):
                atomic_write(self.env, "\n".join(lines) + "\n")
        except Fenced as exc:
            raise ReleaseError(str(exc)) from None
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        with open(self.history, "a") as fh:
            if before and not self._history():
                fh.write(f"{stamp} {before}\n")  # what ran before pitwatch first switched
            fh.write(f"{stamp} {version}\n")

    def apply(self) -> None:
        p = self.platform
        argv = list(p.compose_command)
        if p.compose_file is not None:
            argv += ["-f", str(p.compose_file)]
        argv += ["up", "-d", p.compose_service]
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=app.COMMAND_TIMEOUT, cwd=self.env.parent)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise app.AppControlError(f"{argv}: {exc}") from None
        if proc.returncode != 0:
            raise app.AppControlError(f"{argv} exited {proc.returncode}: "
                                      f"{(proc.stderr or proc.stdout).strip()[-400:]}")


@dataclass(frozen=True)
class Listed:
    version: str
    current: bool
    last: Record | None  # the latest deploy or rollback that left it running


def listing(platform: Platform, records: list[Record]) -> list[Listed]:
    """Every available release, oldest first, with the current one and when each was
    last deployed (``records``: :mod:`deploys`)."""
    sw = switcher(platform)
    current = sw.current()
    last = deploys.last_deployed(records)
    return [Listed(v, v == current, last.get(v)) for v in sw.all()]


def switcher(platform: Platform) -> Folders | Compose:
    return Compose(platform) if platform.deploy == "compose" else Folders(platform)


def _try(sw, version: str, say: Callable[[str], None], smoke: Smoke | None) -> bool:
    say(f"switching to {version}")
    sw.set(version)
    try:
        sw.apply()
    except app.AppControlError as exc:
        say(f"  {exc}")
        return False
    ok = app.wait_healthy(sw.platform, smoke, say=say)
    say(f"  {version}: {'healthy' if ok else 'unhealthy'}")
    return ok


def refusal(platform: Platform, force: bool = False) -> str | None:
    """Why a deploy may not start now (``platform.deploy_window``), or None. The daily
    CME Globex halt, weekends and holidays are the deploy window by default; rollbacks
    are remedies and never wait for it."""
    if force or platform.deploy_window == "any":
        return None
    if platform.deploy_window == "never":
        return "deploys are frozen (platform.deploy_window: never; --force to deploy anyway)"
    if market.is_open():
        return ("CME Globex is trading now; deploy in the daily halt or when the market is "
                "closed (platform.deploy_window: halt; --force to deploy anyway)")
    return None


def _recorded(sw, rec: Record, records, say: Callable[[str], None],
              switch: Callable[[], str]) -> str:
    """Run ``switch`` and record how it went, whatever happens."""
    try:
        running = switch()
        rec.result = "success"
        return running
    except ReleaseError as exc:  # rec.result says failed, or rolled_back
        rec.detail = str(exc)
        raise
    except BaseException as exc:
        rec.detail = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        rec.finished_at = time.time()
        rec.running = sw.current()
        if records is not None:
            try:
                records.append(rec)
            except (OSError, sqlite3.Error) as exc:
                say(f"  could not record the {rec.action}: {exc}")


def _watch(watch: Watch | None, version: str, rec: Record,
           say: Callable[[str], None]) -> Verdict | None:
    if watch is None:
        return None
    verdict = watch.run(say)
    say(f"  {version}: watch {verdict.summary}")
    rec.watch = (f"{rec.watch}; {version} {verdict.summary}" if rec.watch != "not watched"
                 else f"{version} {verdict.summary}")
    return verdict


def rollback(platform: Platform, to: str | None = None, max_tries: int = 3,
             say: Callable[[str], None] = print, smoke: Smoke | None = None,
             watch: Watch | None = None, records=None) -> str:
    """Switch to ``to`` (or the release before the current one); on an unhealthy target
    (health URL and ``smoke`` URLs, :func:`appcontrol.wait_healthy`) try the next older
    ones, and if none is healthy put the original back. The healthy one is then watched
    (``watch``); one that breaches it ends the rollback with a ReleaseError: nothing
    else is tried, a person decides (a rollback never loops). Returns the version now
    running; raises ReleaseError otherwise. ``records``: where it is recorded."""
    sw = switcher(platform)
    original = sw.current()
    rec = Record("rollback", to or "(previous)", from_version=original)
    return _recorded(sw, rec, records, say,
                     lambda: _rollback(sw, original, to, max_tries, say, smoke, watch, rec))


def _rollback(sw, original, to, max_tries, say, smoke, watch, rec) -> str:
    if to is not None:
        if not sw.exists(to):
            raise ReleaseError(f"no release {to!r}")
        candidates = [to] + [v for v in sw.older_than(to) if v != original]
    else:
        candidates = [v for v in sw.older_than(original) if v != original]
    if not candidates:
        raise ReleaseError(f"no release older than {original!r} to roll back to")
    say(f"current release: {original or '(none)'}")
    for version in candidates[:max_tries]:
        rec.to_version = version
        if _try(sw, version, say, smoke):
            verdict = _watch(watch, version, rec, say)
            if verdict is not None and not verdict.passed:
                raise ReleaseError(f"rolled back to {version}, but it breached its watch "
                                   f"({verdict.reason}); stopping here: a person must decide")
            return version
    if original is not None:
        say(f"no healthy older release; putting {original} back")
        _try(sw, original, say, smoke)
    raise ReleaseError(f"rollback failed: none of {candidates[:max_tries]} became healthy")


def deploy(platform: Platform, version: str, snapshot: Callable[[], object] | None,
           say: Callable[[str], None] = print, smoke: Smoke | None = None,
           watch: Watch | None = None, records=None) -> str:
    """Snapshot, switch, health-check, watch (``watch``); an unhealthy release or one that
    breaches its watch is rolled back to the previous release, which gets the same
    watch. Returns the version running; raises ReleaseError when ``version`` is not it."""
    sw = switcher(platform)
    if not sw.exists(version):
        raise ReleaseError(f"no release {version!r}")
    previous = sw.current()
    rec = Record("deploy", version, from_version=previous)
    return _recorded(sw, rec, records, say,
                     lambda: _deploy(sw, version, previous, snapshot, say, smoke, watch, rec))


def _deploy(sw, version, previous, snapshot, say, smoke, watch, rec) -> str:
    if snapshot is not None:
        snapshot()
    if not _try(sw, version, say, smoke):
        why = f"deploy of {version} failed: unhealthy"
    else:
        verdict = _watch(watch, version, rec, say)
        if verdict is None or verdict.passed:
            return version
        why = (f"deploy of {version} failed: it breached its watch after "
               f"{verdict.seconds:.0f}s ({verdict.reason})")
    if previous is None:
        raise ReleaseError(f"{why}, and there is no previous release")
    say(f"{why}; rolling back to {previous}")
    rec.result = "rolled_back"
    if not _try(sw, previous, say, smoke):
        rec.result = "failed"
        raise ReleaseError(f"{why}; rolled back to {previous}, which is unhealthy too: "
                           "a person must decide")
    verdict = _watch(watch, previous, rec, say)
    if verdict is not None and not verdict.passed:
        rec.result = "failed"
        raise ReleaseError(f"{why}; rolled back to {previous}, which breached its watch "
                           f"too ({verdict.reason}): stopping here, a person must decide")
    raise ReleaseError(f"{why}; rolled back to {previous}")
