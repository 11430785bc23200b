"""Read-only SQLite connections for scrapes: never write, never wait long for a lock."""
from __future__ import annotations

import sqlite3
from pathlib import Path

# A scrape must not hang behind a writer; a lock held longer than this is reported.
BUSY_TIMEOUT = 0.25


def connect_ro(path: Path, timeout: float = BUSY_TIMEOUT) -> sqlite3.Connection:
    """A read-only connection; fails (instead of creating a file) when ``path`` is missing."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such database file")
    conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=timeout,
                           check_same_thread=False)
    return conn
