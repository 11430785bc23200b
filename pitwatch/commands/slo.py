"""``pitwatch slo show|rules|burn``: the SLO specification and what is made from it."""
from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    parser = sub.add_parser(
        "slo", help="show the SLOs, generate their burn-rate rules, burn the demo's budget",
        description="The platform's service level objectives (pitwatch/core/slo.py, "
                    "overridden by the slo: section of pitwatch.yml) and what is made of them.")
    actions = parser.add_subparsers(dest="slo_command", metavar="ACTION", required=True)

    config_help = ("pitwatch.yml whose slo: section to use (default: the stated targets, "
                   "as shipped)")
    show = actions.add_parser(
        "show", help="print the objectives and every threshold derived from them",
        description="Print the objectives, their error budgets, and each threshold with the "
                    "alert that uses it (none: pitwatch check only).")
    show.add_argument("--config", "-c", default=None, help=config_help)
    show.set_defaults(func=_show)

    rules = actions.add_parser(
        "rules", help="write alerts/rules/slo.yml: SLI recording rules and burn-rate alerts",
        description="Generate the multiwindow, multi-burn-rate rules (SRE workbook) from the "
                    "SLOs: slo:sli_error:ratio_rate<window>, slo:objective:ratio, "
                    "slo:error_budget_remaining:ratio, slo:burn_rate:ratio_rate1h, and the "
                    "alerts AppAvailabilityBudgetBurn and AppLatencyBudgetBurn. With --check, "
                    "write nothing and exit 1 when the file differs.")
    rules.add_argument("--config", "-c", default=None, help=config_help)
    rules.add_argument("--out", default=None, metavar="FILE",
                       help="file to write, - for standard output (default: the shipped "
                            "alerts/rules/slo.yml)")
    rules.add_argument("--check", action="store_true",
                       help="compare instead of writing; exit 1 when the file differs")
    rules.set_defaults(func=_rules)

    burn = actions.add_parser(
        "burn", help="make the running demo's traffic fail a steady share of requests",
        description="Switch the traffic generator of the demo in DIR (`pitwatch demo DIR`) "
                    "to a steady error mode: exactly RATIO of its requests are answered 500, "
                    "spread evenly. 0.005 burns a 99.95 % availability budget 10 times as "
                    "fast as allowed: over the 6x and 3x burn alerts, under the 14.4x page. "
                    "The running generator picks it up within a second (DIR/run/traffic.json).")
    burn.add_argument("dir", type=Path, help="the demo folder")
    what = burn.add_mutually_exclusive_group(required=True)
    what.add_argument("--error-ratio", type=float, metavar="RATIO",
                      help="share of requests to fail, e.g. 0.005 for 0.5 %%")
    what.add_argument("--off", action="store_true", help="back to the normal mix")
    burn.set_defaults(func=_burn)


def _spec(args):
    from pitwatch.core import config, slo

    return slo.spec(config.load(args.config).slo if args.config else None)


def _show(args) -> int:
    s = _spec(args)
    for o in s.objectives:
        print(f"{o.slo}: {o.description}; error budget {o.budget * 100:.10g} % of requests "
              f"(alert {o.alert})")
    for t in s.thresholds:
        print(f"{t.metric} {t.bad_when} {t.value:g}: {t.description} "
              f"({t.alert or 'pitwatch check'}, {t.severity})")
    return 0


def _rules(args) -> int:
    from pitwatch.core import resources, slo

    text = slo.rules_yaml(_spec(args))
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.out) if args.out else resources.alerts("rules", "slo.yml")
    if args.check:
        current = out.read_text() if out.exists() else None
        if current != text:
            print(f"{out}: {'missing' if current is None else 'differs from the SLOs'}; run "
                  f"`pitwatch slo rules{' --config ' + args.config if args.config else ''}` "
                  "and commit the result", file=sys.stderr)
            return 1
        print(f"{out}: up to date")
        return 0
    out.write_text(text)
    print(out)
    return 0


def _burn(args) -> int:
    from pitwatch.demo import traffic

    ratio = 0.0 if args.off else args.error_ratio
    try:
        path = traffic.write_mode(args.dir, ratio)
    except ValueError as exc:
        print(f"pitwatch slo burn: {exc}", file=sys.stderr)
        return 2
    print(f"{path}: {'normal mix' if not ratio else f'{ratio:.4%} of requests fail'}")
    return 0
