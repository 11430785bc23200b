"""Configs rendered by ``pitwatch render`` for tests: the real renderer, local addresses."""
from __future__ import annotations

from pathlib import Path

from pitwatch import render
from pitwatch.core import config

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE_CONFIG = ROOT / "compose" / "pitwatch.yml"


def compose_config() -> config.Config:
    return config.load(COMPOSE_CONFIG)


def compose_files() -> dict[str, str]:
    """What the compose stack's `render` service writes, by path under /rendered."""
    return {str(p.relative_to("/rendered")): text
            for p, text in render.files(compose_config(), Path("/rendered")).items()}


def alertmanager(out: Path, smarthost: str, to: str, remediator: str, token_file: Path) -> Path:
    """alertmanager.yml (and its template) for this machine, written under ``out``.

    ``remediator`` is the receiver's base URL; the webhook posts to its /alerts.
    """
    cfg = config.parse({
        "platform": {"database": str(out / "unused.db")},
        "mail": {"smarthost": smarthost, "to": [to]},
        "remediation": {"listen": "127.0.0.1:9", "token_file": str(token_file),
                        "journal": str(out / "unused-journal.db")},
        "monitoring": {"remediator_url": remediator},
    })
    render.write(cfg, out)
    return out / "alertmanager" / "alertmanager.yml"
