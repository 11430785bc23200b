"""``pitwatch check``: one health report from every collector, exit 0/1/2."""
from __future__ import annotations

from pitwatch.commands import add_config_option, load_config


def register(sub) -> None:
    parser = sub.add_parser(
        "check", help="print a green/yellow/red health report of the platform",
        description="Run every exporter collector once (background checks too: integrity "
                    "checks, restore test, TLS and header probes) and print one line per "
                    "check, then every shipped alert and board panel this config can never "
                    "feed, with the key that would. Exit code 0 healthy, 1 degraded, 2 failing.")
    add_config_option(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    import logging
    import sys

    from pitwatch import check

    cfg = load_config(args)
    # The report says what failed; the exporter's per-state-change log lines would repeat it.
    logging.getLogger("pitwatch.exporter").setLevel(logging.CRITICAL)
    findings = check.run(cfg)
    if args.json:
        print(check.render_json(findings))
    else:
        print(check.render_text(findings, colour=sys.stdout.isatty()))
    return check.EXIT[check.verdict(findings)]
