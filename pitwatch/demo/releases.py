"""Release folders of the demo app: ``releases/<version>/release.json`` + ``current``.

A release's behaviour lives in its ``release.json``, so a "bad build" is data, not
code: ``error_rate`` (share of /api requests answered 500) and ``extra_latency_ms``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Release:
    version: str
    error_rate: float = 0.0
    extra_latency_ms: float = 0.0
    notes: str = ""


def read(folder: Path) -> Release:
    data = json.loads((folder / "release.json").read_text())
    return Release(
        version=str(data.get("version") or folder.name),
        error_rate=min(max(float(data.get("error_rate", 0.0)), 0.0), 1.0),
        extra_latency_ms=max(float(data.get("extra_latency_ms", 0.0)), 0.0),
        notes=str(data.get("notes", "")),
    )


def current(releases_dir: Path | None) -> Release:
    """The release ``current`` points at; a platform without release folders is 'unknown'."""
    if releases_dir is None or not (releases_dir / "current").exists():
        return Release(version="unknown")
    return read((releases_dir / "current").resolve())


def write(releases_dir: Path, release: Release) -> Path:
    folder = releases_dir / release.version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "release.json").write_text(json.dumps({
        "version": release.version, "error_rate": release.error_rate,
        "extra_latency_ms": release.extra_latency_ms, "notes": release.notes,
    }, indent=2) + "\n")
    return folder


def point_current(releases_dir: Path, version: str) -> None:
    """Switch ``current`` atomically: a new relative link renamed over the old one."""
    tmp = releases_dir / f".current.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(version)
    os.replace(tmp, releases_dir / "current")
