"""A local SMTP server (aiosmtpd) that keeps every mail it receives as a file.

The demo stack points Alertmanager at it, so alert mail can be read (and the drills can
time its arrival) without a real mail server. Each message is written atomically to
``<dir>/<arrival time>-<n>.eml``.
"""
from __future__ import annotations

import itertools
import os
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller


class _Store:
    def __init__(self, folder: Path):
        self.folder = folder
        self._seq = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        name = f"{time.time():.6f}-{next(self._seq):04d}.eml"
        tmp = self.folder / f".{name}.partial"
        tmp.write_bytes(envelope.original_content or envelope.content)
        os.replace(tmp, self.folder / name)
        return "250 Message accepted for delivery"


def serve(folder: Path, host: str, port: int) -> Controller:
    """Start the SMTP server in a background thread; ``.stop()`` ends it."""
    folder.mkdir(parents=True, exist_ok=True)
    controller = Controller(_Store(folder), hostname=host, port=port)
    controller.start()
    return controller


def read_mail(folder: Path) -> list[tuple[float, EmailMessage]]:
    """Every stored mail as (arrival unix time, message), oldest first."""
    out = []
    for path in sorted(Path(folder).glob("*.eml")):
        arrived = float(path.name.split("-", 1)[0])
        out.append((arrived, message_from_bytes(path.read_bytes(), policy=policy.default)))
    return out
