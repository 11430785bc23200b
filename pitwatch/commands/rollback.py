"""``pitwatch rollback [--to VERSION]`` and ``pitwatch restart``: the release actions
the remediation policy runs, and a person can run by hand."""
from __future__ import annotations

import sys

from pitwatch.commands import add_config_option, load_config
from pitwatch.commands.deploy import add_watch_option


def register(sub) -> None:
    parser = sub.add_parser(
        "rollback", help="switch back to an older release and wait until it is healthy",
        description="Switch to VERSION (default: the release before the current one), run "
                    "the reload command (else the restart command, or compose up) and wait for "
                    "the app's /health and smoke URLs (smoke.urls) to pass. An "
                    "unhealthy target is followed by the next older release; if none is "
                    "healthy the original release is put back. The healthy one is watched "
                    "for platform.deploy_watch; if it breaches the SLO thresholds too, the "
                    "rollback stops there and exits 1 for a person to decide (it never "
                    "loops). Recorded like a deploy. Exit 0 healthy, 1 not.")
    add_config_option(parser)
    parser.add_argument("--to", metavar="VERSION", help="the release to switch to")
    parser.add_argument("--max-tries", type=int, default=3,
                        help="how many releases to try before putting the original back (default 3)")
    add_watch_option(parser)
    parser.set_defaults(func=_rollback)
    restart = sub.add_parser(
        "restart", help="run platform.restart_command and wait until the app is healthy",
        description="Restart the app with platform.restart_command, then wait up to "
                    "platform.health_timeout for its /health and smoke URLs. Exit 0 healthy, 1 not.")
    add_config_option(restart)
    restart.set_defaults(func=_restart)


def _rollback(args) -> int:
    from pitwatch.remediation.operations import deploys, watch
    from pitwatch.remediation.operations.appcontrol import AppControlError
    from pitwatch.remediation.operations.releases import ReleaseError, rollback

    cfg = load_config(args)
    try:
        version = rollback(cfg.platform, to=args.to, max_tries=max(1, args.max_tries),
                           smoke=cfg.smoke, watch=watch.from_config(cfg, args.watch),
                           records=deploys.store_for(cfg))
    except (ReleaseError, AppControlError, OSError, ValueError) as exc:
        print(f"pitwatch rollback: {exc}", file=sys.stderr)
        return 1
    print(f"rolled back to {version}; the app is healthy")
    return 0


def _restart(args) -> int:
    from pitwatch.remediation.operations import appcontrol as app

    cfg = load_config(args)
    try:
        app.restart(cfg.platform)
    except app.AppControlError as exc:
        print(f"pitwatch restart: {exc}", file=sys.stderr)
        return 1
    if not app.wait_healthy(cfg.platform, cfg.smoke, say=lambda m: print(m, file=sys.stderr)):
        print(f"pitwatch restart: not healthy after {cfg.platform.health_timeout:.0f}s",
              file=sys.stderr)
        return 1
    print("restarted; the app is healthy")
    return 0
