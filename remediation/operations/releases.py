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
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from pitwatch.core.config import Platform, Smoke

from pitwatch.remediation.operations import appcontrol as app
from pitwatch.remediation.operations.fencing import Fenced, fenced

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

    def older_than(self, version: str | None) -> list[str]:
        """Tags first deployed before ``version`` was, newest first.

        First deployments count, not rollbacks: after v3 was rolled back to v2, v3 is
        still newer than v2.
        """
        order: list[str] = []
        for tag in self._history():
            if tag not in order:
                order.append(tag)
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


def rollback(platform: Platform, to: str | None = None, max_tries: int = 3,
             say: Callable[[str], None] = print, smoke: Smoke | None = None) -> str:
    """Switch to ``to`` (or the release before the current one); on an unhealthy target
    (health URL and ``smoke`` URLs, :func:`appcontrol.wait_healthy`) try the next older
    ones, and if none is healthy put the original back. Returns the
    version now running; raises ReleaseError if no candidate became healthy."""
    sw = switcher(platform)
    original = sw.current()
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
        if _try(sw, version, say, smoke):
            return version
    if original is not None:
        say(f"no healthy older release; putting {original} back")
        _try(sw, original, say, smoke)
    raise ReleaseError(f"rollback failed: none of {candidates[:max_tries]} became healthy")


def deploy(platform: Platform, version: str, snapshot: Callable[[], object] | None,
           say: Callable[[str], None] = print, smoke: Smoke | None = None) -> None:
    """Snapshot, switch, health-check; on failure switch back to the previous release."""
    sw = switcher(platform)
    if not sw.exists(version):
        raise ReleaseError(f"no release {version!r}")
    previous = sw.current()
    if snapshot is not None:
        snapshot()
    if _try(sw, version, say, smoke):
        return
    if previous is None:
        raise ReleaseError(f"{version} is unhealthy and there is no previous release")
    say(f"{version} is unhealthy; rolling back to {previous}")
    back = _try(sw, previous, say, smoke)
    raise ReleaseError(f"deploy of {version} failed; rolled back to {previous}"
                       f"{'' if back else ' (which is unhealthy too)'}")
