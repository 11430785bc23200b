"""Action names -> argv lists.

The built-in actions are the pitwatch commands a person would type, run with the
receiver's own interpreter and config file::

    rollback  [python, -m, pitwatch, rollback, --config, CFG]
    restore   [python, -m, pitwatch, restore, --config, CFG]
    restart   [python, -m, pitwatch, restart, --config, CFG]

Names under ``remediation.actions`` in the config are argv lists used as written and
take precedence over a built-in of the same name.
"""
from __future__ import annotations

import sys

from pitwatch.core.config import BUILTIN_ACTIONS, Config


def argv_for(action: str, cfg: Config) -> list[str]:
    custom = cfg.remediation.actions if cfg.remediation else {}
    if action in custom:
        return list(custom[action])
    if action not in BUILTIN_ACTIONS:
        raise KeyError(f"unknown action {action!r}")
    if cfg.source is None:
        raise ValueError("built-in actions need a config loaded from a file")
    return [sys.executable, "-m", "pitwatch", action, "--config", str(cfg.source)]
