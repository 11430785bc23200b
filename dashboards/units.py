"""The Grafana units the boards use, and how a snapshot prints a value in each.

Keeping the list closed lets the lint test insist on a known unit for every panel and
lets ``dashboards.snapshot`` print values the way Grafana would (roughly).
"""
from __future__ import annotations

import math

SECONDS = "s"                   # durations: how long something took
AGE = "dtdurations"             # time since (time() - t) or until (t - time()): "3 days, 4 hours"
PERCENT = "percentunit"         # a 0..1 ratio shown as %
MULTIPLE = "suffix:×"           # burn rates: how many times the sustainable pace
BYTES = "bytes"                 # IEC: KiB, MiB, GiB
REQUESTS_PER_SECOND = "reqps"
OPS_PER_SECOND = "ops"
OPS_PER_MINUTE = "opm"
SHORT = "short"                 # a plain count
YES_NO = "bool_yes_no"          # 0/1 gauges
UP_DOWN = "bool_on_off"

KNOWN = frozenset({SECONDS, AGE, PERCENT, MULTIPLE, BYTES, REQUESTS_PER_SECOND, OPS_PER_SECOND,
                   OPS_PER_MINUTE, SHORT, YES_NO, UP_DOWN})

_SUFFIX = {REQUESTS_PER_SECOND: " req/s", OPS_PER_SECOND: " ops/s", OPS_PER_MINUTE: " ops/min"}


def _short(value: float) -> str:
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def _seconds(value: float) -> str:
    magnitude = abs(value)
    if magnitude == 0:
        return "0 s"
    if magnitude < 1e-3:
        return f"{value * 1e6:.3g} µs"
    if magnitude < 1:
        return f"{value * 1e3:.3g} ms"
    for limit, suffix in ((86400, "d"), (3600, "h"), (60, "min")):
        if magnitude >= limit:
            return f"{value / limit:.3g} {suffix}"
    return f"{value:.3g} s"


def _bytes(value: float) -> str:
    for power, suffix in ((4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
        if abs(value) >= 1024 ** power:
            return f"{value / 1024 ** power:.3g} {suffix}"
    return f"{value:.0f} B"


def format_value(value: float, unit: str) -> str:
    """``value`` as text in ``unit`` (one of :data:`KNOWN`)."""
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if unit in (SECONDS, AGE):
        return _seconds(value)
    if unit == PERCENT:
        return f"{value * 100:.3g} %"
    if unit == MULTIPLE:
        return f"{value:.3g} ×"
    if unit == BYTES:
        return _bytes(value)
    if unit in _SUFFIX:
        return _short(value) + _SUFFIX[unit]
    if unit == YES_NO:
        return "Yes" if value else "No"
    if unit == UP_DOWN:
        return "On" if value else "Off"
    return _short(value)
