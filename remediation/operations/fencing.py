"""Fencing: a run whose target lock expired cannot finish a switch a newer run started.

The receiver hands each action the lock's token as ``PITWATCH_FENCING_TOKEN``; tokens of
one target only grow (remediation.claims). Every change an action makes to the platform
(the ``current`` link, the compose ``.env``, the database file swap) happens inside
:func:`fenced`, which keeps the highest token seen in ``.pitwatch-fence`` next to what
it changes, under an ``flock`` held for the change itself. A token lower than the one
recorded means another run took the target after this one's lock expired: the change
is refused. A person running the command by hand has no token, and is never fenced.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

ENV = "PITWATCH_FENCING_TOKEN"
FILE = ".pitwatch-fence"


class Fenced(RuntimeError):
    """A newer run holds the target: this (stale) one must not change it."""


@contextmanager
def fenced(folder: Path, token: str | None = None):
    """Hold the fence of ``folder`` around a change; Fenced if a newer run passed it."""
    token = os.environ.get(ENV, "") if token is None else token
    if not token:
        yield
        return
    try:
        mine = int(token)
    except ValueError:
        raise Fenced(f"{ENV}={token!r} is not an integer") from None
    path = Path(folder) / FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.pread(fd, 32, 0).strip()
        seen = int(raw) if raw.isdigit() else 0
        if mine < seen:
            raise Fenced(f"fencing token {mine} is older than {seen} in {path}: another run took "
                         f"the target after this one's lock expired; not changing it (if the "
                         f"claims store was reset, remove {path})")
        if mine > seen:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(mine).encode(), 0)
            os.fsync(fd)
        yield
    finally:
        os.close(fd)  # releases the flock
