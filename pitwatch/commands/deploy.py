"""``pitwatch deploy VERSION [--force] [--watch DURATION]``."""
from __future__ import annotations

import argparse
import sys

from pitwatch.commands import add_config_option, load_config


def duration(text: str) -> float:
    from pitwatch.core.config import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_watch_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--watch", type=duration, metavar="DURATION", default=None,
                        help="watch the new release this long (e.g. 2m) and roll it back on an "
                             "SLO breach; 0 to skip (default: platform.deploy_watch)")


def register(sub) -> None:
    parser = sub.add_parser(
        "deploy", help="snapshot the database, switch to a release, watch it, roll back on failure",
        description="Snapshot the database, switch to VERSION, reload the app (reload_command, "
                    "else restart_command) and wait for /health and the smoke URLs; then watch "
                    "it for platform.deploy_watch: 5xx ratio and latency from the app's "
                    "/metrics and the smoke URLs against the slo: section. An unhealthy or "
                    "breaching release is rolled back by itself, and the rollback is watched "
                    "too. Refused outside platform.deploy_window (default: while CME Globex "
                    "trades) unless --force. Every deploy is recorded (`pitwatch releases`). "
                    "Exit 0 deployed, 1 failed (rolled back), 3 refused.")
    add_config_option(parser)
    parser.add_argument("version", help="release folder name (or image tag with deploy: compose)")
    parser.add_argument("--force", action="store_true",
                        help="deploy even outside the deploy window (market open, freeze)")
    parser.add_argument("--no-snapshot", action="store_true",
                        help="skip the database snapshot (not recommended)")
    add_watch_option(parser)
    parser.set_defaults(func=_deploy)


def _deploy(args) -> int:
    from pitwatch.core import backups
    from pitwatch.remediation.operations import deploys, watch
    from pitwatch.remediation.operations.appcontrol import AppControlError
    from pitwatch.remediation.operations.releases import ReleaseError, deploy, refusal

    cfg = load_config(args)
    refused = refusal(cfg.platform, force=args.force)
    if refused:
        print(f"pitwatch deploy: refused: {refused}", file=sys.stderr)
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
        deploy(cfg.platform, args.version, snapshot, smoke=cfg.smoke,
               watch=watch.from_config(cfg, args.watch), records=deploys.store_for(cfg))
    except (ReleaseError, AppControlError, OSError, ValueError) as exc:
        print(f"pitwatch deploy: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # sqlite3.Error from the snapshot: nothing was switched
        print(f"pitwatch deploy: snapshot failed, nothing deployed: {exc}", file=sys.stderr)
        return 1
    print(f"deployed {args.version}; the app is healthy")
    return 0
