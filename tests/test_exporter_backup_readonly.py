"""Restore tests and `backup verify` on read-only mounts (compose mounts /data and /backups
read-only in the exporter): their temporary copies go to the scratch folder,
`backups.scratch_dir`, default TMPDIR -- never beside the database or the snapshots."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pitwatch.core import backups
from support.fixtures import make_db, overwrite_pages, write_config

needs_mounts = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                  reason="needs root and unshare for a read-only bind mount")

# Runs inside a mount namespace where the database's folder is read-only for root too.
# The collector gets its scratch folder the way the exporter does: from the config.
PROBE = """
import sys
from pitwatch.core import backups, config
from pitwatch.exporters.backup import BackupCollector
cfg = config.load(sys.argv[1])
col = BackupCollector(cfg.platform.database, cfg.backups.snapshots_dir,
                      scratch_dir=backups.scratch_dir(cfg.backups))
result = col.checks()[0].run_once()
print(result)
"""


def read_only(folder: Path, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run ``argv`` in a private mount namespace where ``folder`` is a read-only bind mount."""
    script = f'mount --bind -o ro "{folder}" "{folder}" && exec "$@"'
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *argv],
                          capture_output=True, text=True, timeout=120, env=env)


def environment(tmpdir: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TMPDIR"}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return env


@needs_mounts
@pytest.mark.parametrize("where", ["config", "tmpdir", "beside-the-database"])
def test_restore_test_writes_its_copy_to_the_scratch_folder(tmp_path, where):
    data = tmp_path / "data"
    data.mkdir()
    db = make_db(data / "trading.db", wal=False)
    snaps = tmp_path / "snaps"
    backups.snapshot(db, snaps)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    configured = {"config": str(scratch), "tmpdir": None, "beside-the-database": str(data)}[where]
    section = {"snapshots_dir": str(snaps)}
    if configured:
        section["scratch_dir"] = configured
    config = write_config(tmp_path, db, backups=section)
    # TMPDIR names a folder that does not exist unless it is meant to be used.
    env = environment(scratch if where == "tmpdir" else tmp_path / "no-such-tmpdir")
    proc = read_only(data, [sys.executable, "-c", PROBE, str(config)], env)
    assert proc.returncode == 0, proc.stderr
    if where == "beside-the-database":  # a read-only folder: the reason is named
        assert "Read-only file system" in proc.stdout, proc.stdout
    else:
        assert proc.stdout.startswith("(True,"), proc.stdout
        assert not list(scratch.iterdir())  # the copy is gone afterwards
    assert sorted(p.name for p in data.iterdir()) == ["trading.db"]


def verify(config: Path, snaps: Path, tmpdir: Path) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "pitwatch", "backup", "verify", "--all", "--config", str(config)]
    return read_only(snaps, argv, environment(tmpdir))


@needs_mounts
@pytest.mark.parametrize("configured", [True, False])
def test_backup_verify_on_a_read_only_snapshots_folder(tmp_path, configured):
    db = make_db(tmp_path / "trading.db", wal=False)
    snaps = tmp_path / "snaps"
    good = backups.snapshot(db, snaps, now=1_700_000_000)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    section = {"snapshots_dir": str(snaps)}
    if configured:
        section["scratch_dir"] = str(scratch)
    config = write_config(tmp_path, db, backups=section)
    tmpdir = tmp_path / "no-such-tmpdir" if configured else scratch
    proc = verify(config, snaps, tmpdir)
    assert (proc.returncode, proc.stdout) == (0, f"ok  {good.path}: ok\n"), proc.stderr

    # A snapshot damaged after its manifest was written: the checksum says so.
    changed = backups.snapshot(db, snaps, now=1_700_000_100)
    with open(changed.path, "r+b") as fh:
        fh.seek(8192)
        fh.write(b"\0" * 4096)
    # A snapshot of an already damaged file, its manifest matching: only the integrity
    # check of the copy, made in the scratch folder, can tell.
    broken = backups.snapshot(db, snaps, now=1_700_000_200)
    overwrite_pages(Path(broken.path), 2, 3)
    manifest = json.loads(broken.manifest_path.read_text())
    manifest["sha256"] = backups.sha256_file(Path(broken.path))
    broken.manifest_path.write_text(json.dumps(manifest))
    before = sorted(p.name for p in snaps.iterdir())

    proc = verify(config, snaps, tmpdir)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3, proc.stdout
    assert lines[0].startswith(f"BAD {broken.path}: ") and "sha256" not in lines[0], lines
    assert lines[1] == f"BAD {changed.path}: sha256 differs from the manifest"
    assert lines[2] == f"ok  {good.path}: ok"
    assert "Read-only" not in proc.stderr, proc.stderr
    assert not list(scratch.iterdir())  # the copies are gone
    assert sorted(p.name for p in snaps.iterdir()) == before


@needs_mounts
def test_backup_verify_uses_the_configured_scratch_folder(tmp_path):
    """Pointed at the read-only snapshots folder, verify fails for that reason -- proof it
    writes where it is told -- and gives no verdict on the snapshot."""
    db = make_db(tmp_path / "trading.db", wal=False)
    snaps = tmp_path / "snaps"
    backups.snapshot(db, snaps)
    config = write_config(tmp_path, db, backups={"snapshots_dir": str(snaps),
                                                 "scratch_dir": str(snaps)})
    proc = verify(config, snaps, tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert f"cannot verify in {snaps}" in proc.stderr and "Read-only file system" in proc.stderr
