"""The restore test on a read-only database volume (compose mounts /data read-only in the
exporter and gives it TMPDIR=/scratch): the temporary copy goes to $TMPDIR."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from pitwatch.core import backups
from support.fixtures import make_db

# Runs inside a mount namespace where the database's folder is read-only for root too.
PROBE = """
import sys
from pitwatch.exporters.backup import BackupCollector
col = BackupCollector(sys.argv[1], sys.argv[2])
result = col.checks()[0].run_once()
print(result)
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare for a read-only bind mount")
@pytest.mark.parametrize("tmpdir,ok", [(True, True), (False, False)])
def test_restore_test_writes_its_copy_to_tmpdir(tmp_path, tmpdir, ok):
    data = tmp_path / "data"
    data.mkdir()
    db = make_db(data / "trading.db", wal=False)
    snaps = tmp_path / "snaps"
    backups.snapshot(db, snaps)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TMPDIR"}
    if tmpdir:
        env["TMPDIR"] = str(scratch)
    script = f'mount --bind -o ro "{data}" "{data}" && exec "$0" -c "$1" "$2" "$3"'
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, sys.executable, PROBE,
                           str(db), str(snaps)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    if ok:
        assert proc.stdout.startswith("(True,"), proc.stdout
        assert not list(scratch.iterdir())  # the copy is gone afterwards
    else:  # beside a read-only database there is nowhere to write: the reason is named
        assert "Read-only file system" in proc.stdout, proc.stdout
