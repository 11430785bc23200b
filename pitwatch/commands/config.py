"""``pitwatch config check FILE``."""
from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser("config", help="work with pitwatch.yml")
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a pitwatch.yml and say what is wrong")
    check.add_argument("file", help="the pitwatch.yml to validate")
    check.set_defaults(func=_check)


def _check(args) -> int:
    from pitwatch.core import config

    cfg = config.load(args.file)  # ConfigError -> one line, exit 2 (pitwatch.cli)
    parts = ["platform"] + [
        name for name in ("backups", "remediation", "mail") if getattr(cfg, name) is not None
    ]
    print(f"{args.file}: ok ({', '.join(parts)}; {len(cfg.trading_queries)} trading queries)")
    return 0
