"""``pitwatch check``: the exporter's collectors as a green / yellow / red health report.

The verdicts are read from the same metric samples Prometheus would scrape, with the
thresholds of the SLO specification (:mod:`pitwatch.core.slo`: RPO 1 h, RTO 5 min, DB
query p99 50 ms, memory 1 GB, TLS 21 d / 7 d, …, or the config's ``slo:`` section): a
value past a warning alert's threshold is yellow, past a critical one's red, as the
alerts would say. Exit code: 0 healthy, 1 degraded (a yellow), 2 failing (a red). An
"info" line says what could not be judged (a firewall nobody can see) without
changing the exit code.
"""
from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass

from pitwatch.core import slo
from pitwatch.core.slo import Threshold

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"
EXIT = {OK: 0, WARN: 1, FAIL: 2, INFO: 0}
DAY = 86400.0
MIB = 1024 * 1024


@dataclass
class Finding:
    concern: str
    check: str
    status: str
    detail: str


class Samples:
    """Metric samples of one collection, by sample name."""

    def __init__(self, families):
        self.by_name: dict[str, list[tuple[dict, float]]] = defaultdict(list)
        for family in families:
            for s in family.samples:
                self.by_name[s.name].append((s.labels, s.value))

    def all(self, name: str) -> list[tuple[dict, float]]:
        return self.by_name.get(name, [])

    def one(self, name: str, **labels) -> float | None:
        for have, value in self.all(name):
            if all(have.get(k) == v for k, v in labels.items()):
                return value
        return None


def _ago(seconds: float) -> str:
    seconds = max(seconds, 0)
    for unit, size in (("d", DAY), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _size(n: float) -> str:
    for unit in ("GiB", "MiB", "KiB"):
        size = {"GiB": 1024 ** 3, "MiB": MIB, "KiB": 1024}[unit]
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def judge(value: float, *thresholds: Threshold) -> str:
    """Red past a critical threshold, yellow past a warning one, else green."""
    crossed = {t.severity for t in thresholds
               if (value > t.value if t.bad_when == "above" else value < t.value)}
    return FAIL if "critical" in crossed else WARN if crossed else OK


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile of cumulative (upper bound, count) buckets, as Prometheus'
    ``histogram_quantile`` estimates it (linear within the bucket); None without counts."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][0] != math.inf or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for i, (upper, count) in enumerate(buckets):
        if count >= rank:
            if upper == math.inf:  # the highest finite bound is all that is known
                return buckets[i - 1][0] if i else 0.0
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return None  # unreachable: the +Inf bucket holds every count


def evaluate(samples: Samples, problems: dict[str, tuple[str, ...]] | None = None,
             details: dict[str, str] | None = None, backups_configured: bool = True,
             now: float | None = None, spec: slo.Spec | None = None) -> list[Finding]:
    """Verdicts from one collection.

    ``problems``: each failing collector's reasons; ``details``: what background checks
    said, keyed ``concern:check`` (e.g. ``database:quick_check``); ``spec``: the SLOs
    (default: the stated targets).
    """
    problems, details = problems or {}, details or {}
    now = time.time() if now is None else now
    spec = spec or slo.spec()
    out: list[Finding] = []
    add = lambda concern, check, status, detail: out.append(Finding(concern, check, status, detail))

    for labels, value in samples.all("pitwatch_collector_success"):
        name = labels["collector"]
        if value == 1:
            add(name, "collector", OK, "all sources read")
        else:
            add(name, "collector", FAIL, "; ".join(problems.get(name, ())) or "a source failed")

    market = samples.one("pitwatch_market_open")
    if market is not None:
        add("market", "open", OK, "CME Globex open" if market else "CME Globex closed")

    last_trade = samples.one("pitwatch_trading_last_trade_timestamp_seconds")
    allowed = samples.one("pitwatch_activity_expected_max_trade_age_seconds")
    if last_trade is not None and allowed is None:
        add("trading", "last trade", OK, f"{_ago(now - last_trade)} ago")
    elif last_trade is not None:
        # As NoTradesWhileMarketOpen: too old only while the market is open.
        late = now - last_trade > allowed and market == 1
        add("trading", "last trade", WARN if late else OK,
            f"{_ago(now - last_trade)} ago (may be {_ago(allowed)} old now)")
    positions = samples.all("pitwatch_trading_open_positions")
    if positions:
        add("trading", "open positions", OK,
            f"{sum(v for _, v in positions):.0f} across {len(positions)} symbols")

    size = samples.one("pitwatch_sqlite_size_bytes")
    if size is not None:
        wal = samples.one("pitwatch_sqlite_wal_size_bytes") or 0
        status = judge(wal, spec.WAL_SIZE)
        add("database", "size", status,
            f"{_size(size)}, WAL {_size(wal)}" + (" (checkpoints starving?)" if status != OK else ""))
    buckets = [(float(labels["le"]), count) for labels, count
               in samples.all("pitwatch_sqlite_probe_query_duration_seconds_bucket")]
    p99 = histogram_quantile(0.99, buckets)
    if p99 is not None:
        queries = max(count for _, count in buckets)
        add("database", "probe query", judge(p99, spec.DB_PROBE_P99),
            f"p99 {p99 * 1000:.1f} ms (histogram of {queries:.0f} "
            f"{'query' if queries == 1 else 'queries'})")
    for labels, value in samples.all("pitwatch_sqlite_integrity_check_ok"):
        check = labels["check"]
        detail = details.get(f"database:{check}") or ("ok" if value == 1 else "failed")
        add("database", check, OK if value == 1 else FAIL, detail)

    if not backups_configured:
        add("backup", "configured", WARN, "no backups: section in the config")
    retained = samples.one("pitwatch_backup_snapshots_retained")
    if retained is not None:
        newest = samples.one("pitwatch_backup_snapshot_last_success_timestamp_seconds")
        if newest is None:
            add("backup", "snapshot age", FAIL, "no complete snapshot")
        else:
            add("backup", "snapshot age",
                judge(now - newest, spec.BACKUP_AGE_EARLY, spec.BACKUP_AGE),
                f"newest {_ago(now - newest)} old, {retained:.0f} retained")
    replica = samples.one("pitwatch_backup_litestream_last_replica_write_timestamp_seconds")
    if replica is not None:
        add("backup", "litestream replica",
            judge(now - replica, spec.REPLICA_AGE_EARLY, spec.REPLICA_AGE),
            f"last write {_ago(now - replica)} ago")
    restore_ok = samples.one("pitwatch_backup_restore_test_ok")
    if restore_ok is not None:
        took = samples.one("pitwatch_backup_restore_test_duration_seconds") or 0
        detail = details.get("backup:restore_test", "")
        if restore_ok != 1:
            add("backup", "restore test", FAIL, detail or "failed")
        else:
            add("backup", "restore test", judge(took, spec.RESTORE_DURATION),
                f"restored and checked in {took:.1f}s ({detail})" if detail else f"{took:.1f}s")

    failures = samples.all("pitwatch_security_login_failures_total")
    if failures:
        add("security", "login failures", OK,
            ", ".join(f"{l['source']}: {v:.0f}" for l, v in failures))
    for labels, value in samples.all("pitwatch_security_fail2ban_banned"):
        add("security", f"fail2ban {labels['jail']}", OK, f"{value:.0f} banned")
    for labels, not_after in samples.all("pitwatch_security_tls_cert_not_after_timestamp_seconds"):
        left = not_after - now
        status = judge(left, spec.TLS_WARNING, spec.TLS_CRITICAL)
        detail = f"expired {_ago(-left)} ago" if left < 0 else f"expires in {_ago(left)}"
        add("security", f"tls {labels['source']}", status, detail)
    headers = samples.all("pitwatch_security_http_header_present")
    if headers:
        missing = [l["header"] for l, v in headers if v != 1]
        add("security", "http headers", WARN if missing else OK,
            f"missing: {', '.join(missing)}" if missing else f"all {len(headers)} present")
    firewall = samples.one("pitwatch_security_firewall_active")
    if firewall is not None:
        add("security", "firewall", OK if firewall == 1 else WARN,
            "active" if firewall == 1 else "no active host firewall found")
    elif samples.one("pitwatch_security_firewall_known") == 0:
        why = details.get("security:firewall", "not readable")
        add("security", "firewall", INFO, f"unknown: {why}")

    for labels, ok in samples.all("pitwatch_smoke_success"):
        url = labels["url"]
        took = samples.one("pitwatch_smoke_duration_seconds", url=url) or 0
        code = samples.one("pitwatch_smoke_status_code", url=url) or 0
        if ok != 1:
            add("smoke", url, FAIL, details.get(f"smoke:{url}") or f"status {code:.0f}")
        else:
            add("smoke", url, judge(took, spec.SMOKE_LATENCY),
                f"{code:.0f} in {took * 1000:.0f} ms")

    rss = samples.one("pitwatch_app_process_resident_memory_bytes")
    if rss is not None:
        add("system", "app memory", judge(rss, spec.APP_MEMORY), _size(rss))
    for labels, free in samples.all("pitwatch_volume_free_bytes"):
        total = samples.one("pitwatch_volume_size_bytes", volume=labels["volume"]) or 0
        share = free / total if total else 0
        status = judge(share, spec.VOLUME_FREE_WARNING, spec.VOLUME_FREE_CRITICAL)
        add("system", f"{labels['volume']} volume", status, f"{_size(free)} free ({share:.0%})")
    load1, cpus = samples.one("pitwatch_host_load1"), samples.one("pitwatch_host_cpus")
    if load1 is not None and cpus:
        add("system", "load", OK, f"{load1:.2f} on {cpus:.0f} CPUs")  # context, no SLO

    up = samples.one("pitwatch_redis_up")
    if up is not None:
        if up != 1:
            add("redis", "up", FAIL, "Redis does not answer PING")
        else:
            ping = samples.one("pitwatch_redis_ping_duration_seconds") or 0
            used = samples.one("pitwatch_redis_used_memory_bytes") or 0
            add("redis", "up", judge(ping, spec.REDIS_PING),
                f"PING {ping * 1000:.1f} ms, {_size(used)} used")
    # Grouped by concern, in collector order (the sort is stable).
    order = {l["collector"]: i for i, (l, _) in enumerate(samples.all("pitwatch_collector_success"))}
    return sorted(out, key=lambda f: order.get(f.concern, len(order)))


def verdict(findings: list[Finding]) -> str:
    statuses = {f.status for f in findings}
    return FAIL if FAIL in statuses else WARN if WARN in statuses else OK


COLOURS = {OK: "\033[32m", WARN: "\033[33m", FAIL: "\033[31m", INFO: "\033[36m"}
LABELS = {OK: "OK", WARN: "WARN", FAIL: "FAIL", INFO: "INFO"}
SUMMARY = {OK: "healthy", WARN: "degraded", FAIL: "failing"}


def render_text(findings: list[Finding], colour: bool) -> str:
    width = max((len(f.concern) for f in findings), default=8)
    lines = []
    for f in findings:
        label = f"{LABELS[f.status]:<4}"
        if colour:
            label = f"{COLOURS[f.status]}{label}\033[0m"
        lines.append(f"{label}  {f.concern:<{width}}  {f.check}: {f.detail}")
    overall = verdict(findings)
    counts = {s: sum(f.status == s for f in findings) for s in (OK, WARN, FAIL)}
    summary = (f"{SUMMARY[overall]}: {counts[OK]} ok, {counts[WARN]} warn, {counts[FAIL]} fail")
    unknown = sum(f.status == INFO for f in findings)
    if unknown:
        summary += f", {unknown} not judged"
    if colour:
        summary = f"{COLOURS[overall]}{summary}\033[0m"
    lines.append(summary)
    return "\n".join(lines)


def render_json(findings: list[Finding]) -> str:
    overall = verdict(findings)
    return json.dumps({"status": SUMMARY[overall], "exit_code": EXIT[overall],
                       "checks": [asdict(f) for f in findings]}, indent=2)


def run(cfg) -> list[Finding]:
    """Run every collector once, background checks included (synchronously)."""
    from pitwatch.exporters.registry import build_registry

    registry = build_registry(cfg, process_metrics=False)
    registry.run_checks_once()
    samples = Samples(registry.collect())
    problems = {c.name: c.last_problems for c in registry.concerns if c.last_problems}
    findings = evaluate(samples, problems, registry.details(),
                        backups_configured=cfg.backups is not None, spec=slo.spec(cfg.slo))
    return findings + blind_findings(cfg)


def blind_findings(cfg) -> list[Finding]:
    """The shipped alerts and panels this config can never feed: not a fault of the
    platform (INFO), but what nobody would otherwise learn until it mattered."""
    from pitwatch import blind

    out = [Finding("off" if b.off else "blind", f"alert {b.name}", INFO,
                   b.reason if b.off else f"never fires: {b.reason}")
           for b in blind.blind_alerts(cfg)]
    out += [Finding("off" if b.off else "blind", f"panel {b.board}/{b.name}", INFO,
                    b.reason if b.off else f"no data: {b.reason}")
            for b in blind.blind_panels(cfg)]
    return out
