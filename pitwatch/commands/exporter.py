"""``pitwatch exporter``: serve the platform's metrics for Prometheus (job ``exporter``)."""
from __future__ import annotations

from pitwatch.commands import add_config_option, load_config


def register(sub) -> None:
    parser = sub.add_parser(
        "exporter", help="serve /metrics and /healthz for Prometheus",
        description="Run every pitwatch collector behind /metrics (and /healthz), with the "
                    "expensive checks (integrity, restore test, TLS and header probes) in "
                    "background threads. Stops cleanly on SIGTERM or Ctrl-C.")
    add_config_option(parser)
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="address to serve on (default: exporter.listen from the config)")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    import gc
    import logging

    from pitwatch.exporters.registry import build_registry
    from pitwatch.exporters.server import serve
    from pydantic import ValidationError

    from pitwatch.core.config import ConfigError, Exporter

    cfg = load_config(args)
    listen = cfg.exporter.listen
    if args.listen:
        try:
            listen = Exporter(listen=args.listen).listen
        except ValidationError as exc:
            msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise ConfigError(f"--listen: {msg}") from None
    host, _, port = listen.rpartition(":")
    registry = build_registry(cfg)
    # Everything imported so far lives as long as the process: keep the collector from
    # re-walking it on every full collection (those pauses land in scrape latency).
    gc.freeze()
    registry.start()
    try:
        serve(registry, host.strip("[]"), int(port))
    finally:
        registry.stop()
        logging.getLogger("pitwatch.exporter").info("stopped")
    return 0
