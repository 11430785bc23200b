"""Shared test set-up: the venv's binaries (litestream, pitwatch) on PATH."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_bin = str(Path(sys.executable).parent)
if _bin not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")


def without_redis(config_path: Path) -> Path:
    """A demo config whose app does not expect the Redis that `pitwatch demo` starts."""
    config_path.write_text(re.sub(r"\n  redis_url: .*", "", config_path.read_text()))
    return config_path
