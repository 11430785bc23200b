"""``pitwatch restore [--from litestream|snapshot] [--at TIME]``."""
from __future__ import annotations

import sys

from pitwatch.commands import add_config_option, load_config


def register(sub) -> None:
    parser = sub.add_parser(
        "restore", help="replace the database with a verified backup, keeping the damaged files",
        description="Restore platform.database into a temporary file beside it, check it "
                    "(integrity check + sanity query), stop the app (stop_command: it must "
                    "stop Litestream too), move the damaged database, -wal and -shm into "
                    "quarantine/<time>/, rename the restored file into place, start the app "
                    "and wait until its health and smoke URLs pass. With Litestream, a row "
                    "written afterwards must come back out of the replica. Prints RTO and "
                    "RPO. Exit 0 restored and healthy, 4 healthy but replication did not "
                    "resume (degraded), 1 otherwise.")
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
                        help="do not stop/start the app (it must already be stopped: refused "
                             "while any process holds the database or its -wal open)")
    parser.add_argument("--force", action="store_true",
                        help="with --no-restart, swap the file even while processes hold it")
    parser.add_argument("--fault-at", metavar="TIME",
                        help="when the data was last known good (RFC 3339), for the RPO; "
                             "default: the triggering alert's start ($PITWATCH_STARTS_AT, set "
                             "by the remediator), else now")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_restore)


def _restore(args) -> int:
    import json
    import os
    from dataclasses import asdict
    from pathlib import Path

    from pitwatch.core import exits
    from pitwatch.core.times import parse_time
    from pitwatch.remediation.operations.appcontrol import AppControlError
    from pitwatch.remediation.operations.restore import RestoreError, restore

    cfg = load_config(args)
    say = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    fault_at = args.fault_at or os.environ.get("PITWATCH_STARTS_AT") or None
    try:
        fault_time = parse_time(fault_at).timestamp() if fault_at else None
    except ValueError:
        print(f"pitwatch restore: --fault-at {fault_at!r}: expected RFC 3339", file=sys.stderr)
        return 2
    try:
        report = restore(cfg, source=args.source, at=args.at,
                         snapshot_path=Path(args.snapshot) if args.snapshot else None,
                         check="quick_check" if args.quick else "integrity_check",
                         restart_app=not args.no_restart, checksum=args.checksum,
                         force=args.force, fault_time=fault_time, say=say)
    except (RestoreError, AppControlError, OSError) as exc:
        print(f"pitwatch restore: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({**asdict(report), "degraded": report.degraded}, indent=2))
    else:
        for line in _summary(report):
            print(line)
    if not report.healthy:
        return 1
    return exits.DEGRADED if report.degraded else 0


def _summary(report) -> list[str]:
    from pitwatch.core.times import rfc3339

    lines = [f"RTO {report.rto_seconds:.1f}s (app down {report.downtime_seconds:.1f}s)"]
    if report.rpo_seconds is None:
        lines.append("RPO unknown: the backup's position could not be read")
    else:
        lines.append(f"RPO {report.rpo_seconds:.1f}s: backup at {rfc3339(report.backup_time)}, "
                     f"fault at {rfc3339(report.fault_time)}")
    if report.newest_row is not None:
        lines.append(f"newest restored row {rfc3339(report.newest_row)} (a cross-check of the data)")
    if report.degraded:
        lines.append("DEGRADED: the app runs on the restored data, but replication did not resume")
    return lines
