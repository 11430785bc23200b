"""Subcommands of ``pitwatch``; see :mod:`pitwatch.cli`."""
from __future__ import annotations

import argparse
import os

DEFAULT_CONFIG = "pitwatch.yml"


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", "-c",
        default=os.environ.get("PITWATCH_CONFIG", DEFAULT_CONFIG),
        help="pitwatch.yml to use (default: $PITWATCH_CONFIG or ./pitwatch.yml)",
    )


def load_config(args: argparse.Namespace):
    from pitwatch.core import config

    return config.load(args.config)
