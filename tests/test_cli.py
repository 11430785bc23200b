"""Every command and subcommand answers --help."""
import argparse
import subprocess
import sys

import pytest

from pitwatch.cli import build_parser


def command_paths(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from command_paths(sub, prefix + (name,))


PATHS = list(command_paths(build_parser()))


def test_there_are_commands():
    assert ("config", "check") in PATHS


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_help(path):
    proc = subprocess.run([sys.executable, "-m", "pitwatch", *path, "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: pitwatch " + " ".join(path))
