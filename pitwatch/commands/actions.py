"""``pitwatch actions``: what the remediator ran, why, and what it held back."""
from __future__ import annotations

import sys

from pitwatch.commands import add_config_option, load_config


def register(sub) -> None:
    parser = sub.add_parser(
        "actions", help="show the remediator's runs and the decisions that did not act",
        description="Read the remediation journal (remediation.journal, or a running "
                    "remediator's GET /actions with --url) and print each run with its "
                    "trigger (alert, labels, episode start), rule, result, duration, what "
                    "changed (release from -> to, backup, RTO, RPO), verdict and output tail, "
                    "and each decision that did not act with its reason (cooldown, max_runs, "
                    "market_hours, dry_run, locked, duplicate, blocked_by, redis_unavailable). "
                    "Oldest first.")
    add_config_option(parser)
    parser.add_argument("--url", metavar="URL",
                        help="a remediator's base URL (e.g. http://remediator:9095); its "
                             "token is read from remediation.read_token_file or token_file")
    parser.add_argument("--token-file", metavar="PATH", help="the token for --url")
    parser.add_argument("--since", metavar="WHEN",
                        help="only entries since then: a duration (2h, 30m) or an RFC 3339 time")
    parser.add_argument("--rule", metavar="NAME", help="only this policy rule")
    parser.add_argument("--outcome", metavar="WORD",
                        help="only entries with this outcome (act, dry_run, suppressed, "
                             "ignored), result (success, failure, degraded, timeout, "
                             "interrupted, skipped) or reason (cooldown, duplicate, ...)")
    parser.add_argument("--limit", type=int, default=20,
                        help="at most this many runs and this many decisions (default 20)")
    parser.add_argument("--json", action="store_true",
                        help="print JSON (with --follow: one object per line)")
    parser.add_argument("--follow", "-f", action="store_true",
                        help="keep polling and print new entries until Ctrl-C")
    parser.add_argument("--interval", type=float, default=2.0,
                        help="seconds between polls with --follow (default 2)")
    parser.set_defaults(func=_actions)


def _actions(args) -> int:
    import json
    import time

    from pitwatch.remediation import history
    from pitwatch.remediation.journal import JournalUnavailable

    cfg = load_config(args)
    if cfg.remediation is None:
        print("pitwatch: the config has no remediation section", file=sys.stderr)
        return 2
    try:
        since = history.since(args.since, time.time()) if args.since else None
    except ValueError as exc:
        print(f"pitwatch actions: --since {exc}", file=sys.stderr)
        return 2
    q = history.Query(since=since, rule=args.rule, outcome=args.outcome,
                      limit=max(1, min(args.limit, 500)))
    try:
        fetch = history.source(cfg.remediation, args.url, args.token_file)
        if args.follow:
            for entry in history.follow(fetch, q, max(0.2, args.interval)):
                print(json.dumps(entry) if args.json else "\n".join(history.lines(entry)),
                      flush=True)
            return 0
        doc = fetch(q)
    except (JournalUnavailable, history.RemoteUnavailable) as exc:
        print(f"pitwatch actions: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    entries = list(reversed(history.timeline(doc)))
    if not entries:
        print("nothing matches: no run and no held-back decision")
    for entry in entries:
        print("\n".join(history.lines(entry)))
    return 0
