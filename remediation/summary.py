"""What a run's output says happened, in a few fields a person reads first.

The built-in actions print fixed lines (``remediation/operations`` and their commands):
a rollback "current release: X", "switching to Y", "rolled back to Y"; a restore
"restoring DB from snapshot PATH" (or "from litestream (CONFIG)"), "RTO 1.6s (app down
1.2s)", "RPO 3.0s: backup at …, fault at …", "replication resumed: …" or "DEGRADED: …".
They are read back from the journalled output rather than recorded apart, so a run
started by hand or by an older receiver reads the same. Custom actions get a verdict
(their last line) and nothing else.
"""
from __future__ import annotations

import re

VERDICT_LIMIT = 160  # a verdict is a metric label too: one line, bounded

_PATTERNS = {
    "from_version": re.compile(r"^current release: (?!\(none\))(\S+)$", re.M),
    "to_version": re.compile(r"^rolled back to ([^;\s]+)", re.M),
    "backup": re.compile(r"^restoring .+? from (snapshot \S+|litestream \(.+?\))", re.M),
    "rto": re.compile(r"^RTO ([0-9.]+s)", re.M),
    "rpo": re.compile(r"^RPO ([0-9.]+s|unknown)", re.M),
}
_REPLICATION = (("replication resumed", "proven"), ("replication NOT resumed", "not resumed"),
                ("replication not proven", "not proven"))
# The line that says how it ended, most telling first.
_VERDICTS = (re.compile(r"^DEGRADED: .*$", re.M), re.compile(r"^pitwatch \w+: .*$", re.M),
             re.compile(r"^rolled back to .*$", re.M), re.compile(r"^app (NOT )?healthy.*$", re.M),
             re.compile(r"^restarted; .*$", re.M), re.compile(r"^\[receiver stopped .*\]$", re.M))


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= VERDICT_LIMIT else text[:VERDICT_LIMIT - 1] + "…"


def verdict(status: str, output: str) -> str:
    for pattern in _VERDICTS:
        last = None
        for last in pattern.finditer(output):
            pass
        if last is not None:
            return _one_line(last.group(0))
    if status == "timeout":
        return "killed: the action outlived its timeout"
    lines = [line for line in output.splitlines() if line.strip()]
    return _one_line(lines[-1]) if lines else status


def summarise(action: str, status: str, output: str | None) -> dict[str, str]:
    """Fields found in ``output`` (absent ones left out), and always a ``verdict``."""
    output = output or ""
    out: dict[str, str] = {}
    for key, pattern in _PATTERNS.items():
        found = pattern.findall(output)
        if found:
            out[key] = found[-1] if key != "from_version" else found[0]
    if "to_version" not in out and action == "rollback" and status != "success":
        # A failed rollback put the original back (or left it): it is where it ends.
        back = re.findall(r"^no healthy older release; putting (\S+) back$", output, re.M)
        if back:
            out["to_version"] = back[-1]
    for needle, word in _REPLICATION:
        if needle in output:
            out["replication"] = word
    out["verdict"] = verdict(status, output)
    return out
