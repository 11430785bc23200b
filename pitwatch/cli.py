"""The ``pitwatch`` command: one subcommand per module of ``pitwatch.commands``.

Each module there exposes ``register(subparsers)``, which adds its parser(s) and sets
``func`` (called with the parsed args; its return value is the exit code). Modules
import their heavy dependencies inside ``func``, so ``--help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from pitwatch import __version__, commands
from pitwatch.core.config import ConfigError

# A command whose extra is not installed says which one, instead of a traceback.
EXTRAS = {"grafanalib": "dashboards", "matplotlib": "dashboards", "gunicorn": "tls",
          "aiosmtpd": "demo", "flask": "app", "prometheus_flask_exporter": "app",
          "requests": "demo"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pitwatch",
        description="Observability and automatic remediation for a futures trading platform.",
    )
    parser.add_argument("--version", action="version", version=f"pitwatch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"pitwatch.commands.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"pitwatch: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        print(f"pitwatch {args.command}: needs the {extra!r} extra ({exc.name} is missing): "
              f"pip install 'pitwatch[{extra}]'", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
