"""``pitwatch remediator``: the Alertmanager webhook receiver; ``replay`` dry-runs a
saved notification through the policy."""
from __future__ import annotations

import argparse
import sys

from pitwatch.commands import add_config_option, load_config


def register(sub) -> None:
    parser = sub.add_parser(
        "remediator", help="serve the Alertmanager webhook receiver (POST /alerts)",
        description="Serve POST /alerts, GET /healthz, GET /metrics, GET /actions and the "
                    "status page GET / on remediation.listen. Notifications are journalled "
                    "before they are acknowledged; actions run afterwards in a bounded worker "
                    "pool. /actions and / need the webhook token or remediation.read_token_file "
                    "(a browser opens /?token=TOKEN once and keeps a cookie).")
    add_config_option(parser)
    parser.add_argument("--threads", type=int, default=8,
                        help="HTTP worker threads (default 8; actions have their own pool)")
    parser.set_defaults(func=_serve)
    actions = parser.add_subparsers(dest="remediator_command", metavar="ACTION")
    replay = actions.add_parser(
        "replay", help="run a saved notification through the policy without acting",
        description="Print what the receiver would decide for each alert of FILE.json "
                    "(an Alertmanager webhook body), using the journal's history if it exists. "
                    "Nothing is written and nothing runs.")
    replay.add_argument("file", help="an Alertmanager webhook v4 body (JSON)")
    replay.add_argument("--config", "-c", default=argparse.SUPPRESS,
                        help="pitwatch.yml to use (same as before the ACTION)")
    replay.add_argument("--at", metavar="TIME",
                        help="judge as if it were TIME (RFC 3339, e.g. 2026-11-25T10:00:00-08:00)")
    replay.add_argument("--json", action="store_true", help="print JSON instead of text")
    replay.set_defaults(func=_replay)


def _remediation(cfg):
    if cfg.remediation is None:
        print("pitwatch: the config has no remediation section", file=sys.stderr)
        raise SystemExit(2)
    return cfg.remediation


def _serve(args) -> int:
    import logging

    from pitwatch.remediation.engine import Engine, JournalInUse
    from pitwatch.remediation.journal import JournalUnavailable
    from pitwatch.remediation.receiver import Receiver

    cfg = load_config(args)
    rem = _remediation(cfg)
    try:
        token = _token(rem.token_file, "token_file") if rem.auth == "bearer" else None
        read_token = _token(rem.read_token_file, "read_token_file") if rem.read_token_file else None
    except ValueError as exc:
        print(f"pitwatch: {exc}", file=sys.stderr)
        return 2

    def make_app():
        engine = Engine(cfg)
        engine.recover()
        return engine, Receiver(engine, token, read_token)

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    logging.getLogger("pitwatch.remediator").info(
        "listening on %s://%s (auth %s, journal %s)", "https" if rem.tls_cert else "http",
        rem.listen, rem.auth, rem.journal)
    if rem.tls_cert:
        _serve_tls(make_app, rem, args.threads)
        return 0
    try:
        engine, app = make_app()
    except (JournalInUse, JournalUnavailable, OSError) as exc:
        print(f"pitwatch: cannot open the journal: {exc}", file=sys.stderr)
        return 2
    import waitress

    host, _, port = rem.listen.rpartition(":")
    try:
        waitress.serve(app, host=host, port=int(port), threads=args.threads,
                       ident="pitwatch-remediator", max_request_body_size=8 << 20, _quiet=True)
    finally:
        engine.close(wait=False)
    return 0


def _token(path, key: str) -> bytes:
    try:
        token = path.read_text().strip().encode()
    except OSError as exc:
        raise ValueError(f"cannot read remediation.{key} {path}: {exc.strerror}") from None
    if not token:
        raise ValueError(f"remediation.{key} {path} is empty")
    return token


def _serve_tls(make_app, rem, threads: int) -> None:
    """waitress has no TLS: gunicorn's threaded worker serves it, one worker process so the
    journal keeps a single writer. The engine is built inside the worker (its threads
    would not survive the fork)."""
    from gunicorn.app.base import BaseApplication

    class One(BaseApplication):
        def load_config(self):
            for key, value in {
                "bind": rem.listen, "workers": 1, "worker_class": "gthread", "threads": threads,
                "certfile": str(rem.tls_cert), "keyfile": str(rem.tls_key),
                "accesslog": None, "graceful_timeout": 5,
            }.items():
                self.cfg.set(key, value)

        def load(self):
            return make_app()[1]

    One().run()


def _replay(args) -> int:
    import json
    import time
    from pathlib import Path

    from pitwatch.core.times import parse_time
    from pitwatch.remediation.alerts import BadNotification, parse
    from pitwatch.remediation.replay import replay

    cfg = load_config(args)
    _remediation(cfg)
    try:
        notification = parse(Path(args.file).read_bytes())
    except OSError as exc:
        print(f"pitwatch: {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except BadNotification as exc:
        print(f"pitwatch: {args.file}: {exc}", file=sys.stderr)
        return 2
    now = time.time()
    if args.at:
        try:
            now = parse_time(args.at.replace(" ", "T")).timestamp()
        except ValueError:
            print(f"pitwatch: --at {args.at!r}: expected RFC 3339, e.g. 2026-11-25T10:00:00Z",
                  file=sys.stderr)
            return 2
    out = replay(cfg, notification, now)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for row in out:
        what = {"act": f"would run {row.get('argv')}",
                "dry_run": f"dry run ({row['reason']}): would run {row.get('argv')}",
                "suppressed": f"suppressed ({row['reason']})",
                "ignored": f"ignored ({row['reason']})"}[row["outcome"]]
        print(f"alert {row['alert']} {row['alertname'] or '-'} [{row['status']}] "
              f"rule {row['rule'] or '-'}: {what}")
    return 0
