"""``pitwatch dashboards build|lint|snapshot``: the Grafana boards as code."""
from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    parser = sub.add_parser("dashboards", help="generate, lint and snapshot the Grafana boards")
    actions = parser.add_subparsers(dest="dashboards_command", metavar="ACTION", required=True)

    build = actions.add_parser(
        "build", help="write compose/grafana/dashboards/*.json from the dashboards package",
        description="Write one JSON file per board (sorted keys, stable output). With "
                    "--check, write nothing and exit 1 when the files differ from the code.")
    build.add_argument("--out", type=Path, default=None,
                       help="folder to write (default: the shipped compose/grafana/dashboards)")
    build.add_argument("--check", action="store_true",
                       help="compare instead of writing; exit 1 and name the files that differ")
    build.set_defaults(func=_build)

    lint = actions.add_parser(
        "lint", help="check the boards: variables, job/instance matchers, units, rates, "
                     "counters, annotations, layout",
        description="Lint rules in the spirit of Grafana's dashboard-linter; exit 1 on problems.")
    lint.set_defaults(func=_lint)

    snap = actions.add_parser(
        "snapshot", help="render every board from a real Prometheus into PNG files",
        description="Run every panel's queries against Prometheus (/api/v1/query_range, "
                    "Grafana variables substituted, All for job and instance) and draw one "
                    "PNG per board. Prints the panels that had no data or nothing but NaN.")
    snap.add_argument("--prometheus", required=True, metavar="URL",
                      help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    snap.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    snap.add_argument("--range", default="15m", dest="range_",
                      help="time range ending now (default: 15m)")
    snap.add_argument("--scrape-interval", default="15s",
                      help="Prometheus' scrape interval, for $__rate_interval (default: 15s)")
    snap.add_argument("--fail-on-no-data", action="store_true",
                      help="exit 1 when any panel had no data or nothing but NaN")
    snap.set_defaults(func=_snapshot)


def _build(args) -> int:
    from pitwatch.dashboards import build

    out = args.out or build.DEFAULT_OUT
    if args.check:
        problems = build.differences(out)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print("run `pitwatch dashboards build` and commit the result", file=sys.stderr)
            return 1
        print(f"{out}: {len(build.BOARDS)} dashboards up to date")
        return 0
    for path in build.write(out):
        print(path)
    return 0


def _lint(args) -> int:
    from pitwatch.dashboards import build, lint

    problems = lint.lint(build.models())
    for line in problems:
        print(line)
    if not problems:
        print(f"{len(build.BOARDS)} dashboards: no problems")
    return 1 if problems else 0


def _snapshot(args) -> int:
    from pitwatch.dashboards.queries import QueryError
    from pitwatch.dashboards.snapshot import snapshot
    from pitwatch.core.config import parse_duration

    try:
        range_seconds = parse_duration(args.range_)
        scrape = parse_duration(args.scrape_interval)
    except ValueError as exc:
        print(f"pitwatch dashboards snapshot: {exc}", file=sys.stderr)
        return 2
    if range_seconds <= 0 or scrape <= 0:
        print("pitwatch dashboards snapshot: --range and --scrape-interval must be positive",
              file=sys.stderr)
        return 2
    try:
        boards = snapshot(args.prometheus, args.out, range_seconds, scrape)
    except QueryError as exc:
        print(f"pitwatch dashboards snapshot: {exc}", file=sys.stderr)
        return 1
    empty = 0
    for board in boards:
        print(f"{board.path}")
        for what, found in (("no data", board.no_data), ("NaN only", board.nan_only)):
            for panel, expr in found:
                empty += 1
                print(f"  {what}: {board.title} / {panel}: {expr}")
    return 1 if empty and args.fail_on_no_data else 0
