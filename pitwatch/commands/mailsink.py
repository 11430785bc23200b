"""``pitwatch mailsink``: a local SMTP server storing alert mail as files."""
from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser(
        "mailsink", help="run a local SMTP server that stores every mail in a folder",
        description="Run a local SMTP server (aiosmtpd) that writes each received mail "
                    "to DIR as an .eml file. Used by the demo stack instead of a mail server.")
    parser.add_argument("dir", help="folder for the received mail")
    parser.add_argument("--listen", default="127.0.0.1:2525", help="HOST:PORT (default %(default)s)")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    import signal
    import threading
    from pathlib import Path

    from pitwatch.mailsink import serve

    host, _, port = args.listen.rpartition(":")
    controller = serve(Path(args.dir), host, int(port))
    print(f"mailsink: listening on {args.listen}, storing mail in {args.dir}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        controller.stop()
    return 0
