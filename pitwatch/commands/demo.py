"""``pitwatch demo``: the demo trading platform and the stack that watches it.

    pitwatch demo DIR [--seconds N] [--rate R]     run everything (init DIR when needed)
    pitwatch demo init DIR                         create the demo folder only
    pitwatch demo status DIR                       what runs there, and whether it answers
    pitwatch demo app --config FILE                the trading app, in the foreground
    pitwatch demo restart-app --config FILE        restart it (the config's restart_command)
    pitwatch demo reload-app --config FILE         reload it gracefully (the reload_command)
    pitwatch demo stop-app --config FILE           stop it by its pid file
    pitwatch demo traffic --config FILE [--rate R] the traffic generator

``demo`` takes either an action or a folder, so the actions are parsed by their own
small parsers (a folder literally named like an action: write ``./init``).
"""
from __future__ import annotations

import argparse

from pitwatch.commands import add_config_option, load_config

ACTIONS = {
    "init": "create a self-contained demo platform folder (idempotent)",
    "status": "show the components of the demo running in DIR: pid, alive, ready",
    "app": "run the demo trading app in the foreground (pid in platform.app_pid_file)",
    "restart-app": "stop the running demo app by its pid file, start it again, wait for /health",
    "reload-app": "reload the running demo app onto releases/current without dropping a request",
    "stop-app": "stop the running demo app by its pid file",
    "traffic": "send a realistic mix of requests to the demo app until stopped",
}


def register(sub) -> None:
    epilog = "actions:\n" + "\n".join(f"  {name:<12} {help}" for name, help in ACTIONS.items())
    epilog += "\n\n`pitwatch demo ACTION --help` tells more about each."
    parser = sub.add_parser(
        "demo", help="run the demo trading platform and its monitoring",
        description="Run the demo platform and everything that watches it as child "
                    "processes, all on 127.0.0.1: a mail sink, Redis, Litestream, the app, "
                    "the exporter, the remediator, Alertmanager, Prometheus and traffic. "
                    "State lives in DIR (created when missing; a second run reuses it). "
                    "Ctrl-C or --seconds stops every child.",
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="pitwatch demo DIR [--seconds N] [--rate R] [--ha]\n       pitwatch demo ACTION ...")
    parser.add_argument("target", metavar="DIR|ACTION",
                        help="the demo folder to run, or one of the actions below")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(func=_dispatch)


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pitwatch demo DIR",
                                description="Run the demo stack in DIR until Ctrl-C.")
    p.add_argument("--seconds", type=float, default=None,
                   help="stop everything after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--rate", type=float, default=5.0,
                   help="requests per second of the traffic generator (default: 5)")
    p.add_argument("--ha", action="store_true",
                   help="two clustered Alertmanagers and two remediators sharing the demo's "
                        "Redis (configs pitwatch.remediator-1.yml and -2.yml in DIR)")
    return p


def _action_parser(action: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"pitwatch demo {action}", description=ACTIONS[action])
    if action in ("init", "status"):
        p.add_argument("dir", help="the demo folder")
        return p
    add_config_option(p)
    if action == "app":
        p.add_argument("--workers", type=int, default=2,
                       help="gunicorn worker processes (default: 2)")
        p.add_argument("--threads", type=int, default=8, help="threads per worker (default: 8)")
    elif action == "restart-app":
        p.add_argument("--timeout", type=float, default=30.0,
                       help="seconds to wait for /health of the new process (default: 30)")
    elif action == "reload-app":
        p.add_argument("--timeout", type=float, default=30.0,
                       help="seconds to wait until only new workers serve the release "
                            "`current` points at (default: 30)")
    if action in ("restart-app", "stop-app"):
        p.add_argument("--litestream", action="store_true",
                       help="Litestream too (stopped after the app, started before it): "
                            "what the demo's stop_command and start_command do for a restore")
    elif action == "traffic":
        p.add_argument("--rate", type=float, default=5.0, help="requests per second (default: 5)")
        p.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    return p


def _dispatch(args) -> int:
    if args.target in ACTIONS:
        opts = _action_parser(args.target).parse_args(args.rest)
        return {"init": _init, "status": _status, "app": _app, "restart-app": _restart,
                "reload-app": _reload, "stop-app": _stop, "traffic": _traffic}[args.target](opts)
    opts = _run_parser().parse_args(args.rest)
    from pitwatch.demo import stack

    return stack.run(args.target, seconds=opts.seconds, rate=opts.rate, ha=opts.ha)


def _init(opts) -> int:
    from pitwatch.demo import platform

    platform.init(opts.dir, echo=print)
    return 0


def _status(opts) -> int:
    from pathlib import Path

    from pitwatch.core import config
    from pitwatch.demo import stack

    root = Path(opts.dir).resolve()
    rows = stack.status(root, config.load(root / "pitwatch.yml")) if (root / "pitwatch.yml").exists() else []
    if not rows:
        print(f"no demo has run in {opts.dir} (no run/stack.json)")
        return 1
    for row in rows:
        print(row)
    return 0 if all(" up " in f" {r} " for r in rows[1:]) else 1


def _app(opts) -> int:
    from pitwatch.demo import app

    return app.serve(load_config(opts), workers=opts.workers, threads=opts.threads)


def _restart(opts) -> int:
    from pitwatch.demo import lifecycle

    result = lifecycle.restart(load_config(opts), timeout=opts.timeout, litestream=opts.litestream)
    print(result.message)
    return 0 if result.healthy else 1


def _reload(opts) -> int:
    from pitwatch.demo import lifecycle

    result = lifecycle.reload(load_config(opts), timeout=opts.timeout)
    print(result.message)
    return 0 if result.healthy else 1


def _stop(opts) -> int:
    from pitwatch.demo import lifecycle

    cfg = load_config(opts)
    pid = lifecycle.stop(cfg)
    print(f"demo app pid {pid} stopped" if pid else "no demo app was running")
    if opts.litestream:
        pid = lifecycle.stop_litestream(cfg)
        print(f"litestream pid {pid} stopped" if pid else "no litestream was running")
    return 0


def _traffic(opts) -> int:
    import signal

    from pitwatch.demo import traffic

    gen = traffic.from_config(load_config(opts), rate=opts.rate)
    signal.signal(signal.SIGTERM, lambda *_: gen.stopping.set())
    gen.prime_prices()
    stats = gen.run(seconds=opts.seconds)
    print(f"traffic stopped: {dict(sorted(stats.items()))}")
    return 0
