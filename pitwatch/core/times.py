"""RFC 3339 times as Alertmanager writes them (up to nine fractional digits)."""
from __future__ import annotations

import re
from datetime import datetime, timezone

_RFC3339 = re.compile(
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$")


def parse_time(value: str) -> datetime:
    """RFC 3339 with up to nine fractional digits -> aware datetime."""
    m = _RFC3339.match(value)
    if not m:
        raise ValueError(value)
    frac = (m.group(2) or "")[:7]  # '.' + at most six digits: Python's precision
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(m.group(1) + frac + zone)


def rfc3339(unix: float) -> str:
    """Unix seconds -> RFC 3339 in UTC, to the second."""
    return datetime.fromtimestamp(unix, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
