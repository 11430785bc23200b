"""``pitwatch config check FILE``."""
from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser("config", help="work with pitwatch.yml")
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help="validate a pitwatch.yml and say what is wrong",
        description="Validate a pitwatch.yml. When its database exists, also read the plan "
                    "of each trading query (read-only) and warn about full scans; warnings "
                    "do not change the exit code.")
    check.add_argument("file", help="the pitwatch.yml to validate")
    check.set_defaults(func=_check)


def _check(args) -> int:
    from pitwatch.core import config

    cfg = config.load(args.file)  # ConfigError -> one line, exit 2 (pitwatch.cli)
    parts = ["platform"] + [
        name for name in ("backups", "remediation", "mail") if getattr(cfg, name) is not None
    ]
    print(f"{args.file}: ok ({', '.join(parts)}; {len(cfg.trading_queries)} trading queries)")
    if cfg.trading_queries:
        for line in _plan_warnings(cfg):
            print(f"{args.file}: {line}")
    return 0


def _plan_warnings(cfg) -> list[str]:
    import sqlite3

    from pitwatch.exporters.trading import plan_warnings

    database = cfg.platform.database
    if not database.is_file():
        return [f"note: query plans not checked: no database at {database}"]
    try:
        return [f"warning: {w}" for w in plan_warnings(database, cfg.trading_queries)]
    except (OSError, sqlite3.Error) as exc:
        return [f"note: query plans not checked: {database}: {exc}"]
