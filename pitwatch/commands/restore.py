"""``pitwatch restore [--from litestream|snapshot] [--at TIME]``."""
from __future__ import annotations

import sys

from pitwatch.commands import add_config_option, load_config


def register(sub) -> None:
    parser = sub.add_parser(
        "restore", help="replace the database with a verified backup, keeping the damaged files",
        description="Restore platform.database into a temporary file beside it, check it "
                    "(integrity check + sanity query), stop the app, move the damaged "
                    "database, -wal and -shm into quarantine/<time>/ (never deleted), rename "
                    "the restored file into place, start the app and wait for /health. "
                    "Prints RTO and RPO. Exit 0 restored and healthy, 1 otherwise.")
    add_config_option(parser)
    parser.add_argument("--from", dest="source", choices=("litestream", "snapshot"),
                        help="where from (default: litestream when backups.litestream_config "
                             "is set, else the newest snapshot)")
    parser.add_argument("--at", metavar="TIME",
                        help="point in time (RFC 3339): litestream -timestamp, or the newest "
                             "snapshot taken at or before TIME")
    parser.add_argument("--snapshot", metavar="PATH", help="this snapshot .db instead of the newest")
    parser.add_argument("--checksum", action="store_true",
                        help="also compare the snapshot's sha256 with its manifest (one more "
                             "full read; `pitwatch backup verify` checks it on a schedule)")
    parser.add_argument("--quick", action="store_true",
                        help="PRAGMA quick_check instead of integrity_check (faster, skips indexes)")
    parser.add_argument("--no-restart", action="store_true",
                        help="do not stop/start the app (it must already be stopped)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_restore)


def _restore(args) -> int:
    import json
    from dataclasses import asdict
    from pathlib import Path

    from pitwatch.remediation.operations.appcontrol import AppControlError
    from pitwatch.remediation.operations.restore import RestoreError, restore

    cfg = load_config(args)
    say = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    try:
        report = restore(cfg, source=args.source, at=args.at,
                         snapshot_path=Path(args.snapshot) if args.snapshot else None,
                         check="quick_check" if args.quick else "integrity_check",
                         restart_app=not args.no_restart, checksum=args.checksum, say=say)
    except (RestoreError, AppControlError, OSError) as exc:
        print(f"pitwatch restore: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        rpo = f"{report.rpo_seconds:.1f}s" if report.rpo_seconds is not None else "unknown"
        print(f"RTO {report.rto_seconds:.1f}s (app down {report.downtime_seconds:.1f}s), "
              f"RPO {rpo} (newest row restored)")
    return 0 if report.healthy else 1
