"""Serving a registry over HTTP: ``/metrics`` and ``/healthz`` on waitress.

Only how metrics are served lives here; what is measured lives in the collectors.
Waitress answers concurrent scrapes on a small thread pool.
"""
from __future__ import annotations

import logging
import signal
import threading

from prometheus_client import CollectorRegistry, make_wsgi_app
from waitress import create_server as waitress_server

log = logging.getLogger("pitwatch.exporter")

THREADS = 4


def make_app(registry: CollectorRegistry):
    """A WSGI app: ``/metrics`` (the registry), ``/healthz`` (the process serves), else 404."""
    metrics = make_wsgi_app(registry)

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [b'<html><body><h1>pitwatch exporter</h1><a href="/metrics">metrics</a></body></html>\n']
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics or /healthz\n"]

    return app


def create_server(registry: CollectorRegistry, host: str, port: int, threads: int = THREADS):
    # One log line per queued request is noise for a scrape target.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    return waitress_server(make_app(registry), host=host, port=port, threads=threads,
                           ident="pitwatch-exporter", clear_untrusted_proxy_headers=True)


def serve(registry: CollectorRegistry, host: str, port: int, threads: int = THREADS) -> None:
    """Serve until SIGTERM or SIGINT, then close the listening socket and return."""
    server = create_server(registry, host, port, threads)

    def stop(signum, frame):
        raise SystemExit(0)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
    log.info("serving /metrics on http://%s:%s", host, server.effective_port)
    server.run()  # waitress catches the SystemExit/KeyboardInterrupt and closes itself
