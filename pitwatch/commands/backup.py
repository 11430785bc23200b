"""``pitwatch backup snapshot|verify|list|prune``."""
from __future__ import annotations

import sys

from pitwatch.commands import add_config_option, load_config


def register(sub) -> None:
    parser = sub.add_parser("backup", help="snapshots of the trading database",
                            description="Snapshots of platform.database in backups.snapshots_dir, "
                                        "each with a manifest (sha256, size, time, row counts); "
                                        "and the quarantine/ folder beside the database, where "
                                        "`pitwatch restore` keeps the files it replaced.")
    actions = parser.add_subparsers(dest="backup_command", metavar="ACTION", required=True)
    snap = actions.add_parser("snapshot", help="copy the live database with the online backup API")
    verify = actions.add_parser(
        "verify", help="checksum + integrity check of a restored copy",
        description="Compare each snapshot's sha256 with its manifest, then integrity-check a "
                    "copy made in backups.scratch_dir (default: TMPDIR); nothing is written "
                    "beside the snapshots, which may be read-only.")
    verify.add_argument("--all", action="store_true", help="every snapshot, not only the newest")
    lst = actions.add_parser(
        "list", help="complete snapshots and quarantined copies, newest first",
        description="Complete snapshots, newest first; then, when there are any, the "
                    "quarantined copies restores left beside the database (time, disk use "
                    "with hard links counted once, folder).")
    as_json = lst.add_mutually_exclusive_group()
    as_json.add_argument("--json", action="store_true",
                         help="print the snapshot manifests as a JSON list (as it always was; "
                              "the quarantine is not in it)")
    as_json.add_argument("--json-all", action="store_true",
                         help='print {"snapshots": [manifests], "quarantine": [{"path", '
                              '"created", "bytes"}]} as JSON')
    prune = actions.add_parser(
        "prune", help="delete snapshots past the retention, keeping the newest N; and old "
                      "quarantined copies",
        description="Delete snapshots older than the retention, always keeping the newest N; "
                    "then quarantined copies beyond the newest backups.quarantine_keep or older "
                    "than backups.quarantine_max_age, never the newest one. --retention and "
                    "--keep apply to the snapshots only.")
    prune.add_argument("--retention", metavar="DURATION",
                       help="override backups.retention (e.g. 72h)")
    prune.add_argument("--keep", type=int, metavar="N", help="override backups.keep_min")
    schedule = actions.add_parser(
        "schedule", help="snapshot then prune every interval, until stopped",
        description="Take a snapshot and prune (snapshots and quarantine, as `prune` does) "
                    "now and then every --every, "
                    "until SIGTERM or Ctrl-C. A failed snapshot is reported and retried at "
                    "the next interval (the backup-age alert catches a run of failures).")
    schedule.add_argument("--every", metavar="DURATION", default="1h",
                          help="interval between snapshots (default %(default)s)")
    for p, func in ((snap, _snapshot), (verify, _verify), (lst, _list), (prune, _prune),
                    (schedule, _schedule)):
        add_config_option(p)
        p.set_defaults(func=func)


def _backups(args):
    cfg = load_config(args)
    if cfg.backups is None:
        print("pitwatch backup: the config has no backups section", file=sys.stderr)
        raise SystemExit(2)
    return cfg


def _snapshot(args) -> int:
    return _take(_backups(args))


def _take(cfg) -> int:
    import sqlite3

    from pitwatch.core import backups

    db = cfg.platform.database
    if not db.exists():
        print(f"pitwatch backup: {db} does not exist", file=sys.stderr)
        return 1
    print(f"snapshot of {db} ({db.stat().st_size >> 20} MiB) ...", file=sys.stderr, flush=True)
    try:
        # One backup step: a stepped copy of a live database restarts on every write.
        m = backups.snapshot(db, cfg.backups.snapshots_dir)
    except (sqlite3.Error, OSError) as exc:
        print(f"\npitwatch backup: snapshot failed: {exc}", file=sys.stderr)
        return 1
    rows = sum(m.tables.values())
    print(f"{m.path}  {m.size_bytes} bytes  {rows} rows in {len(m.tables)} tables  sha256 {m.sha256[:12]}")
    return 0


def _verify(args) -> int:
    from pitwatch.core import backups

    cfg = _backups(args)
    snaps = backups.list_snapshots(cfg.backups.snapshots_dir)
    if not snaps:
        print(f"pitwatch backup: no snapshot in {cfg.backups.snapshots_dir}", file=sys.stderr)
        return 1
    scratch = backups.scratch_dir(cfg.backups)
    bad = 0
    for m in snaps if args.all else snaps[:1]:
        print(f"verifying {m.path} ({m.size_bytes >> 20} MiB) ...", file=sys.stderr, flush=True)
        try:
            ok, why = backups.verify_snapshot(m, scratch)
        except OSError as exc:  # the scratch folder, not the snapshot: no verdict on it
            print(f"pitwatch backup: cannot verify in {scratch}: {exc}", file=sys.stderr)
            return 1
        bad += not ok
        print(f"{'ok ' if ok else 'BAD'} {m.path}: {why}")
    return 1 if bad else 0


def _list(args) -> int:
    import json
    from dataclasses import asdict
    from datetime import datetime, timezone

    from pitwatch.core import backups

    def when(t: float) -> str:
        return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")

    cfg = _backups(args)
    snaps = backups.list_snapshots(cfg.backups.snapshots_dir)
    if args.json:
        print(json.dumps([asdict(m) for m in snaps], indent=2))
        return 0
    try:
        held = backups.list_quarantine(cfg.platform.database)
    except OSError as exc:
        print(f"pitwatch backup: quarantine of {cfg.platform.database}: {exc}", file=sys.stderr)
        return 1
    if args.json_all:
        print(json.dumps({"snapshots": [asdict(m) for m in snaps],
                          "quarantine": [asdict(q) for q in held]}, indent=2, default=str))
        return 0
    for m in snaps:
        print(f"{when(m.created)}  {m.size_bytes:>12}  {sum(m.tables.values()):>10} rows  {m.path}")
    if not snaps:
        print(f"(no snapshot in {cfg.backups.snapshots_dir})")
    if held:  # a section only when a restore has left something
        print(f"\nquarantined by restores, {sum(q.bytes for q in held)} bytes on disk:")
        for q in held:
            print(f"{when(q.created)}  {q.bytes:>12}  {q.path}")
    return 0


def _prune(args) -> int:
    from pitwatch.core.config import parse_duration

    cfg = _backups(args)
    try:
        retention = parse_duration(args.retention) if args.retention else cfg.backups.retention
    except ValueError as exc:
        print(f"pitwatch backup: --retention: {exc}", file=sys.stderr)
        return 2
    keep = args.keep if args.keep is not None else cfg.backups.keep_min
    if keep < 1:
        print("pitwatch backup: --keep must be at least 1", file=sys.stderr)
        return 2
    return _prune_with(cfg, retention, keep)


def _prune_with(cfg, retention: float, keep: int) -> int:
    from pitwatch.core import backups

    removed = backups.prune(cfg.backups.snapshots_dir, retention, keep)
    for m in removed:
        print(f"removed {m.path}")
    left = len(backups.list_snapshots(cfg.backups.snapshots_dir))
    print(f"{len(removed)} removed, {left} kept")
    db = cfg.platform.database
    try:
        gone = backups.prune_quarantine(db, cfg.backups.quarantine_keep,
                                        cfg.backups.quarantine_max_age)
    except OSError as exc:
        print(f"pitwatch backup: quarantine of {db}: {exc}", file=sys.stderr)
        return 1
    for q in gone:
        print(f"removed {q.path} ({q.bytes} bytes)")
    if gone or backups.quarantine_dir(db).is_dir():
        print(f"quarantine: {len(gone)} removed, {len(backups.list_quarantine(db))} kept")
    return 0


def _schedule(args) -> int:
    import signal
    import threading

    from pitwatch.core.config import parse_duration

    cfg = _backups(args)
    try:
        every = parse_duration(args.every)
    except ValueError as exc:
        print(f"pitwatch backup: --every: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        if _take(cfg) == 0:
            _prune_with(cfg, cfg.backups.retention, cfg.backups.keep_min)
        sys.stdout.flush()
        stop.wait(every)
    return 0
