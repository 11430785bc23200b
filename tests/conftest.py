"""Test set-up only: the venv's binaries (litestream, pitwatch) on PATH, and this folder on
sys.path so that the helpers import as ``support.<module>``. Fixtures and helpers shared
by several modules live in ``support/``; nothing imports this file."""
from __future__ import annotations

import os
import sys
from pathlib import Path

_bin = str(Path(sys.executable).parent)
if _bin not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")

# pytest's default (prepend) import mode already does this; other import modes do not.
_here = str(Path(__file__).resolve().parent)
if _here not in sys.path:
    sys.path.insert(0, _here)
