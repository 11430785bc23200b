"""``pitwatch drill SCENARIO DIR``: inject a real fault into the demo stack and time recovery."""
from __future__ import annotations

import argparse

SCENARIO_HELP = {
    "bad-release": "deploy the faulty release: error-rate alert -> mail -> rollback",
    "db-corruption": "overwrite pages of the live database: detection -> mail -> restore; RPO",
    "app-down": "kill -9 the app: down alert -> mail -> restart",
    "stale-backup": "stop Litestream and snapshots: sync alert -> mail (no automatic action)",
}


def register(sub) -> None:
    parser = sub.add_parser(
        "drill", help="inject a real fault into the demo stack and measure MTTR",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Start the demo stack in DIR (or use the one running there), wait until "
                    "it is warm, inject the fault, and follow it to recovery: alert pending, "
                    "firing, mail received, webhook received, action started and finished, "
                    "healthy again. Prints the timeline in seconds from the fault and MTTR "
                    "(RTO and RPO where they apply). Exit 1 when the platform does not recover "
                    "within the scenario's limit.\n\nscenarios:\n" + "\n".join(
                        f"  {name:<14} {text}" for name, text in SCENARIO_HELP.items()))
    parser.add_argument("scenario", choices=sorted(SCENARIO_HELP), metavar="SCENARIO",
                        help="one of: " + ", ".join(sorted(SCENARIO_HELP)))
    parser.add_argument("dir", help="the demo folder (created when needed)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--rate", type=float, default=5.0,
                        help="traffic in requests/s when the drill starts the stack (default 5)")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    import json
    import sys
    from pathlib import Path

    from pitwatch import drills
    from pitwatch.core import config
    from pitwatch.demo import platform, stack

    def echo(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    root = Path(args.dir).resolve()
    cfg = config.load(platform.init(root, echo=echo))
    running = stack.running(root, cfg)
    own = None
    if running:
        echo(f"using the demo stack running in {root}")
        stop = running.stop_component
    else:
        own = stack.Stack(root, cfg, stack.components(cfg, cfg.source, rate=args.rate), echo=echo)
        echo(f"starting the demo stack in {root}")
        stop = own.stop_component
    scenario = drills.SCENARIOS[args.scenario]
    try:
        if own:
            own.start()
        p = drills.Platform(cfg, root, drills.prometheus_url(root), stop)
        drills.warm_up(p, scenario, echo=echo)
        report = drills.run(scenario, p, echo=echo)
        code = 0
    except drills.DrillFailed as exc:
        echo(str(exc))
        report, code = exc.report, 1
    except (RuntimeError, TimeoutError) as exc:
        echo(f"drill {args.scenario} could not run: {exc}")
        return 1
    finally:
        if own:
            own.stop()
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.text())
    return code
