"""Gunicorn config for the trading app with Prometheus multiprocess metrics.

    PROMETHEUS_MULTIPROC_DIR=/run/trading/metrics PITWATCH_CONFIG=pitwatch.yml \\
        gunicorn -c python:pitwatch.demo.gunicorn_conf -w 4 'pitwatch.demo.app:from_env()'

Every worker writes its samples into PROMETHEUS_MULTIPROC_DIR; /metrics on any
worker sums them. Files of a previous run would be summed too, so they go at start.
"""
from __future__ import annotations

import os
from pathlib import Path

from pitwatch.exporters.flask import mark_process_dead, multiprocess_dir


def on_starting(server) -> None:
    folder = multiprocess_dir()
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for stale in Path(folder).glob("*.db"):
            stale.unlink()


def child_exit(server, worker) -> None:
    mark_process_dead(worker.pid)


# Quiet by default like the waitress runner; errors still reach stderr.
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "warning")
