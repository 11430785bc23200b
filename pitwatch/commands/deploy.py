"""``pitwatch deploy VERSION [--force]``."""
from __future__ import annotations

import sys

from pitwatch.commands import add_config_option, load_config


def register(sub) -> None:
    parser = sub.add_parser(
        "deploy", help="snapshot the database, switch to a release, roll back on failure",
        description="Snapshot the database, switch to VERSION, restart and wait for /health and the smoke URLs; "
                    "an unhealthy release is rolled back by itself. Refused while CME Globex "
                    "trades unless --force. Exit 0 deployed, 1 failed (rolled back), "
                    "3 refused (market open).")
    add_config_option(parser)
    parser.add_argument("version", help="release folder name (or image tag with deploy: compose)")
    parser.add_argument("--force", action="store_true", help="deploy even while the market is open")
    parser.add_argument("--no-snapshot", action="store_true",
                        help="skip the database snapshot (not recommended)")
    parser.set_defaults(func=_deploy)


def _deploy(args) -> int:
    from pitwatch.core import backups, market
    from pitwatch.remediation.operations.appcontrol import AppControlError
    from pitwatch.remediation.operations.releases import ReleaseError, deploy

    cfg = load_config(args)
    if market.is_open() and not args.force:
        print("pitwatch deploy: refused: CME Globex is trading now (use --force to deploy anyway)",
              file=sys.stderr)
        return 3
    snapshot = None
    if not args.no_snapshot:
        if cfg.backups is None:
            print("pitwatch deploy: no backups section to snapshot into (or --no-snapshot)",
                  file=sys.stderr)
            return 2

        def snapshot():
            m = backups.snapshot(cfg.platform.database, cfg.backups.snapshots_dir)
            print(f"snapshot {m.path} ({m.size_bytes} bytes)")
    try:
        deploy(cfg.platform, args.version, snapshot, smoke=cfg.smoke)
    except (ReleaseError, AppControlError, OSError) as exc:
        print(f"pitwatch deploy: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # sqlite3.Error from the snapshot: nothing was switched
        print(f"pitwatch deploy: snapshot failed, nothing deployed: {exc}", file=sys.stderr)
        return 1
    print(f"deployed {args.version}; the app is healthy")
    return 0
