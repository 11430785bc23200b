"""``pitwatch releases``: the available releases, the current one, and when each was
last deployed."""
from __future__ import annotations

import sys

from pitwatch.commands import add_config_option, load_config


def register(sub) -> None:
    parser = sub.add_parser(
        "releases", help="list the releases, the current one and when each was last deployed",
        description="List the available releases (release folders, or the image tags set so "
                    "far with deploy: compose), oldest first; `*` marks the current one. "
                    "LAST DEPLOYED is the latest deploy or rollback that left it running, "
                    "and who started it, from the deploy records. Exit 0, 1 when the "
                    "releases cannot be read.")
    add_config_option(parser)
    parser.set_defaults(func=_releases)


def _releases(args) -> int:
    from datetime import datetime, timezone

    from pitwatch.remediation.operations import deploys
    from pitwatch.remediation.operations.releases import ReleaseError, listing

    cfg = load_config(args)
    try:
        rows = listing(cfg.platform, deploys.store_for(cfg).read())
    except (ReleaseError, OSError, ValueError) as exc:
        print(f"pitwatch releases: {exc}", file=sys.stderr)
        return 1
    table = [("", "VERSION", "LAST DEPLOYED (UTC)", "BY")]
    for row in rows:
        when = by = "-"
        if row.last is not None:
            when = datetime.fromtimestamp(row.last.finished_at, timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S")
            by = f"{row.last.action} by {row.last.started_by}: {row.last.who}"
        table.append(("*" if row.current else "", row.version, when, by))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0
