"""``pitwatch files export DIR`` and ``pitwatch files path [NAME]``: the shipped files
(alert rules and their tests, alertmanager.yml, templates, runbook, the compose stack
with its Grafana boards, the example config) where a person or a program can use them."""
from __future__ import annotations

import sys

NAMES = {"alerts": ("alerts",), "compose": ("compose",), "example": ("pitwatch.example.yml",)}


def register(sub) -> None:
    parser = sub.add_parser(
        "files", help="export the shipped rules, Alertmanager config, compose stack and example",
        description="pitwatch ships the files Prometheus, Alertmanager, Grafana and Compose "
                    "read. `export` copies them into a folder of yours to adapt; `path` says "
                    "where the installed copies are.")
    actions = parser.add_subparsers(dest="files_command", metavar="ACTION", required=True)

    export = actions.add_parser(
        "export", help="copy every shipped file into DIR (never overwrites)",
        description="Write alerts/ (rules, rule tests, alertmanager.yml, templates, "
                    "runbook.md), compose/ (the stack, Grafana provisioning and boards) and "
                    "pitwatch.example.yml under DIR. Nothing is written when any of them "
                    "exists already (exit 2).")
    export.add_argument("dir", metavar="DIR", help="folder to write into (created if missing)")
    export.add_argument("--quiet", "-q", action="store_true",
                        help="print only the count, not every file")
    export.set_defaults(func=_export)

    path = actions.add_parser(
        "path", help="print where the installed alerts/, compose/ or example config are",
        description="Without NAME: one line per shipped item, `NAME PATH`. With NAME "
                    "(alerts, compose, example, or a path below alerts/ or compose/ such as "
                    "alerts/rules): only its path, for scripts, e.g. "
                    "promtool check rules \"$(pitwatch files path alerts/rules)\"/*.yml")
    path.add_argument("name", nargs="?", metavar="NAME",
                      help="alerts | compose | example | alerts/... | compose/...")
    path.set_defaults(func=_path)


def _export(args) -> int:
    from pathlib import Path

    from pitwatch.core import resources

    dest = Path(args.dir)
    try:
        written = resources.export(dest)
    except FileExistsError as exc:
        print(f"pitwatch files export: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"pitwatch files export: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    summary = f"{len(written)} files written under {dest}"
    if args.quiet:
        print(summary)
        return 0
    for f in written:
        print(f)  # stdout: one path a line, for scripts
    print(summary, file=sys.stderr)
    return 0


def _path(args) -> int:
    from pitwatch.core import resources

    if args.name is None:
        for name, parts in NAMES.items():
            print(f"{name} {resources.path(*parts)}")
        return 0
    head, _, rest = args.name.strip("/").partition("/")
    if head not in NAMES or (rest and head == "example"):
        print(f"pitwatch files path: unknown {args.name!r}: expected "
              f"{', '.join(NAMES)}, or a path below alerts/ or compose/", file=sys.stderr)
        return 2
    found = resources.path(*NAMES[head], *([p for p in rest.split("/") if p]))
    if not found.exists():
        print(f"pitwatch files path: {args.name}: not shipped ({found} does not exist)",
              file=sys.stderr)
        return 2
    print(found)
    return 0
