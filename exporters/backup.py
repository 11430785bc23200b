"""``backup``: snapshot freshness, Litestream replica freshness, and a periodic restore test.

Backups are proven, not assumed: in the background the newest backup (the Litestream
replica when one is configured, else the newest snapshot) is restored into a
temporary file in the scratch folder (``backups.scratch_dir``, default TMPDIR; the
database's and the snapshots' folders may be read-only mounts) and integrity-checked.
The scrape only reads the cached verdict, plus the disk use of the files restores have
quarantined (a stat of each, so constant in database size).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import yaml
from prometheus_client.core import GaugeMetricFamily, Metric

from pitwatch.exporters.base import CheckError, Concern, Periodic, every
from pitwatch.core import backups, binaries

LEFTOVER_PREFIX = ".pitwatch-restore-test-"


class BackupCollector(Concern):
    name = "backup"

    def __init__(self, database: Path, snapshots_dir: Path | None,
                 litestream_config: Path | None = None, restore_test_interval: float = 3600,
                 litestream_binary: str | None = None, scratch_dir: Path | None = None):
        super().__init__()
        self._scratch = Path(scratch_dir) if scratch_dir else None
        self.litestream_binary = litestream_binary
        self.database = Path(database)
        self.snapshots_dir = Path(snapshots_dir) if snapshots_dir else None
        self.litestream_config = Path(litestream_config) if litestream_config else None
        self.restore_interval = restore_test_interval
        self._restore = Periodic("restore_test", restore_test_interval, self.restore_test)
        self._lock = threading.Lock()
        self._listing: tuple[int, list[backups.Manifest]] | None = None

    def checks(self) -> list[Periodic]:
        return [self._restore]

    def measure(self, problems: list[str]) -> Iterator[Metric]:
        if self.snapshots_dir is not None:
            yield from self._snapshots(problems)
        if self.litestream_config is not None:
            yield from self._replica(problems)
            if self.missing_binary():
                problems.append(self.missing_binary())
        yield from self._quarantine(problems)
        yield from self._restore_result()

    # -- snapshots -------------------------------------------------------------------
    def snapshots(self) -> list[backups.Manifest]:
        """Complete snapshots, newest first; re-read only when the folder changed."""
        assert self.snapshots_dir is not None
        stamp = self.snapshots_dir.stat().st_mtime_ns  # a new manifest is renamed in
        with self._lock:
            if self._listing and self._listing[0] == stamp:
                return self._listing[1]
        listing = backups.list_snapshots(self.snapshots_dir)
        with self._lock:
            self._listing = (stamp, listing)
        return listing

    def _snapshots(self, problems: list[str]) -> Iterator[Metric]:
        try:
            listing = self.snapshots()
        except OSError as exc:
            problems.append(f"snapshots folder {self.snapshots_dir}: {exc.strerror}")
            return
        yield GaugeMetricFamily("pitwatch_backup_snapshots_retained",
                                "Complete snapshots (with a manifest) in the snapshots folder",
                                value=len(listing))
        if listing:
            newest = listing[0]
            yield GaugeMetricFamily("pitwatch_backup_snapshot_last_success_timestamp_seconds",
                                    "When the newest complete snapshot was taken",
                                    value=newest.created)
            yield GaugeMetricFamily("pitwatch_backup_snapshot_last_size_bytes",
                                    "Size of the newest complete snapshot", value=newest.size_bytes)

    # -- quarantine ------------------------------------------------------------------
    def _quarantine(self, problems: list[str]) -> Iterator[Metric]:
        try:
            held = backups.list_quarantine(self.database)
        except OSError as exc:
            problems.append(f"quarantine folder {backups.quarantine_dir(self.database)}: "
                            f"{exc.strerror or exc}")
            return
        yield GaugeMetricFamily("pitwatch_backup_quarantine_copies",
                                "Folders of files replaced by restores, kept in quarantine/ "
                                "beside the database until pruned",
                                value=len(held))
        yield GaugeMetricFamily("pitwatch_backup_quarantine_bytes",
                                "Disk space the quarantined files use (hard links counted once)",
                                value=sum(q.bytes for q in held))

    # -- litestream ------------------------------------------------------------------
    def replica_paths(self) -> list[Path]:
        """The ``type: file`` replica folders of this database in the Litestream config."""
        assert self.litestream_config is not None
        return file_replicas(self.litestream_config, self.database)

    def _replica(self, problems: list[str]) -> Iterator[Metric]:
        try:
            paths = self.replica_paths()
        except (OSError, ValueError, yaml.YAMLError) as exc:
            problems.append(f"litestream config {self.litestream_config}: {exc}")
            return
        if not paths:
            return  # replicas elsewhere (S3, ...): Litestream's own metrics cover them
        newest = 0.0
        for path in paths:
            try:
                newest = max(newest, newest_mtime(path))
            except OSError as exc:
                problems.append(f"litestream replica {path}: {exc.strerror or exc}")
        if newest:
            yield GaugeMetricFamily("pitwatch_backup_litestream_last_replica_write_timestamp_seconds",
                                    "Newest modification time of a file in the Litestream file replica",
                                    value=newest)
        elif not problems:
            problems.append("litestream replica holds no files yet")

    # -- restore test ----------------------------------------------------------------
    def restore_test(self) -> tuple[bool, str] | None:
        """Restore the newest backup into a temp file; integrity-check it.

        None while there is no backup yet (a new platform): nothing failed, so nothing is
        reported, and the check comes back soon instead of after its full interval.
        """
        self._remove_leftovers()
        # A missing program is a set-up problem, said as one (measure()), not a bad backup.
        if self._nothing_to_restore() or self.missing_binary():
            return None
        with tempfile.TemporaryDirectory(dir=self.scratch_dir(),
                                         prefix=LEFTOVER_PREFIX) as tmp:
            out = Path(tmp) / "restored.db"
            if self.litestream_config is not None:
                backups.litestream_restore(self.litestream_config, self.database, out,
                                           binary=self.litestream_binary)
                source = "litestream"
            else:
                newest = backups.list_snapshots(self.snapshots_dir)[0]
                shutil.copyfile(newest.path, out)
                if backups.sha256_file(out) != newest.sha256:
                    return False, f"{Path(newest.path).name}: sha256 differs from its manifest"
                source = Path(newest.path).name
            ok, detail = backups.integrity_check(out)
            return ok, f"{source}: {detail}"

    def missing_binary(self) -> str | None:
        """Why litestream cannot be run, or None when it can (or is not needed)."""
        if self.litestream_config is None:
            return None
        try:
            binaries.find("litestream", self.litestream_binary)
        except binaries.BinaryNotFound as exc:
            return str(exc)
        return None

    def _nothing_to_restore(self) -> bool:
        if self.litestream_config is not None:
            paths = self.replica_paths()
            # Replicas elsewhere (S3, ...) cannot be looked at: let the restore say.
            return bool(paths) and not any(os.path.isdir(p) and newest_mtime(p) for p in paths)
        return not (self.snapshots_dir and backups.list_snapshots(self.snapshots_dir))

    def scratch_dir(self) -> Path:
        """Where the restored copy goes: the configured scratch folder, else the default
        of :func:`pitwatch.core.backups.scratch_dir` (TMPDIR)."""
        return self._scratch or backups.scratch_dir()

    def _remove_leftovers(self, older_than: float = 3600) -> None:
        """Temp folders of restore tests killed mid-way (each may hold a database copy)."""
        for folder in self.scratch_dir().glob(f"{LEFTOVER_PREFIX}*"):
            try:
                if time.time() - folder.stat().st_mtime > older_than:
                    shutil.rmtree(folder, ignore_errors=True)
            except OSError:
                pass

    def details(self) -> dict[str, str]:
        latest = self._restore.latest()
        if latest is None or latest[0] is None:
            return {}
        return {"restore_test": str(latest[0]) if isinstance(latest[0], CheckError) else latest[0][1]}

    def _restore_result(self) -> Iterator[Metric]:
        latest = self._restore.latest()
        if latest is None or latest[0] is None:
            return
        result, finished, seconds = latest
        passed = not isinstance(result, CheckError) and result[0]
        how = f"refreshed {every(self.restore_interval)} in the background"
        yield GaugeMetricFamily("pitwatch_backup_restore_test_ok",
                                f"1 if the last restore of the newest backup passed an integrity check ({how})",
                                value=1.0 if passed else 0.0)
        yield GaugeMetricFamily("pitwatch_backup_restore_test_timestamp_seconds",
                                f"When the last restore test finished ({how})", value=finished)
        yield GaugeMetricFamily("pitwatch_backup_restore_test_duration_seconds",
                                f"Seconds the last restore test took, restore and check: the RTO floor ({how})",
                                value=seconds)


def file_replicas(config: Path, database: Path) -> list[Path]:
    """Folders of the ``type: file`` replicas that Litestream ``config`` keeps for ``database``."""
    doc = yaml.safe_load(Path(config).read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("dbs"), list):
        raise ValueError("no dbs: list")
    want = os.path.realpath(database)
    found = []
    for entry in doc["dbs"]:
        if not isinstance(entry, dict) or not entry.get("path"):
            continue
        if os.path.realpath(_expand(entry["path"], config)) != want:
            continue
        replicas = entry.get("replicas") or []
        if isinstance(entry.get("replica"), dict):
            replicas = [entry["replica"], *replicas]
        for rep in replicas:
            if not isinstance(rep, dict):
                continue
            url = str(rep.get("url") or "")
            if url.startswith("file://"):
                found.append(Path(_expand(url.removeprefix("file://"), config)))
            elif rep.get("type", "file") == "file" and rep.get("path") and not url:
                found.append(Path(_expand(rep["path"], config)))
        return found
    raise ValueError(f"no entry for {database}")


def _expand(path: str, config: Path) -> str:
    # Litestream expands $VARS; relative paths are taken against the config's folder.
    expanded = os.path.expanduser(os.path.expandvars(str(path)))
    return expanded if os.path.isabs(expanded) else str(Path(config).parent / expanded)


def newest_mtime(folder: Path) -> float:
    """Newest mtime of a file below ``folder`` (Litestream v0.5 writes LTX files there)."""
    newest = 0.0
    stack = [str(folder)]
    if not os.path.isdir(folder):
        raise FileNotFoundError(2, "no such folder", str(folder))
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    newest = max(newest, entry.stat().st_mtime)
    return newest
