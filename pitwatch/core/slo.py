"""The platform's service level objectives: one specification, every threshold from it.

The targets (availability 99.95 %; API p95 < 200 ms; DB query p99 < 50 ms; memory
< 1 GB per instance; RPO < 1 h; RTO < 5 min) and the operational thresholds that go
with them are the ``slo:`` section of ``pitwatch.yml`` (:class:`pitwatch.core.config.Slo`,
whose defaults are the stated targets). From :func:`spec`:

- ``pitwatch slo rules`` generates the burn-rate recording rules and alerts,
  ``alerts/rules/slo.yml`` (:func:`rules_yaml`);
- the hand-written alerts (AppHighErrorRate, AppHighLatency, DatabaseProbeQuerySlow, …)
  use the values of :attr:`Spec.thresholds`, found by alert name and severity;
- ``pitwatch check`` judges with the same thresholds, at the alert's severity (a
  warning is yellow, a critical red);
- the boards draw them (``pitwatch.dashboards.slo`` is a view of the default spec).

``tests/test_slo_drift.py`` fails when any of them disagrees with this module.
"""
from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass

from pitwatch.core.config import Slo as Targets

DAY = 86400.0

# Request-duration buckets of the app's instrumentation (pitwatch.exporters.flask):
# the latency threshold and 0.05 must be bounds, so rules read them exactly.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)
# SQLite on local disk: most queries take well under a millisecond; the SLO is p99 < 50 ms.
DB_QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

# The SLI windows (SRE workbook, "Alerting on SLOs": multiwindow, multi-burn-rate) and
# the period the error budget is counted over.
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
PERIOD = "30d"
# Windows of a day and more read days of raw samples: they are evaluated once a minute.
LONG_WINDOWS = ("1d", "3d", PERIOD)
LONG_INTERVAL = "1m"
# `for` of every burn alert: the short window is what makes an alert reset quickly; the
# minute only keeps one odd evaluation from paging.
BURN_FOR = "1m"

REQUESTS = "pitwatch_app_http_request_total"
DURATION_BUCKET = "pitwatch_app_http_request_duration_seconds_bucket"
# The DB query SLI: the app's own queries where it is instrumented and queries, else the
# exporter's synthetic probe. `source` says which, for the boards.
APP_QUERY = "pitwatch_app_db_query_duration_seconds"
PROBE_QUERY = "pitwatch_sqlite_probe_query_duration_seconds"
DB_QUERY_P99 = "slo:db_query_duration_seconds:p99_rate5m"
SOURCE_APP, SOURCE_PROBE = "app queries", "synthetic probe"


def db_query_p99() -> str:
    """p99 of the app's queries over 5m, or (only when it ran none) of the probe query."""
    app = (f'histogram_quantile(0.99, sum by (job, le) (rate({APP_QUERY}_bucket{{job="app"}}[5m])))\n'
           f'  and on (job) sum by (job) (rate({APP_QUERY}_count{{job="app"}}[5m])) > 0')
    probe = f"histogram_quantile(0.99, sum by (job, le) (rate({PROBE_QUERY}_bucket[5m])))"
    return (f'label_replace(\n{_block(app, 2)},\n  "source", "{SOURCE_APP}", "", "")\n'
            f'or on ()\n'
            f'label_replace(\n{_block(probe, 2)},\n  "source", "{SOURCE_PROBE}", "", "")')


@dataclass(frozen=True)
class BurnWindows:
    """One alert of a multiwindow pair: both windows burn faster than ``factor``."""

    long: str
    short: str
    factor: float
    severity: str  # critical pages, warning is a ticket (mail)
    budget_spent: str  # what the long window at this factor costs of a 30-day budget


# 14.4x for 1 h spends 2 % of a 30-day budget, 6x for 6 h 5 %, 3x for 1 d and 1x for
# 3 d 10 % each (the workbook's table).
BURNS = (
    BurnWindows("1h", "5m", 14.4, "critical", "2 %"),
    BurnWindows("6h", "30m", 6, "critical", "5 %"),
    BurnWindows("1d", "2h", 3, "warning", "10 %"),
    BurnWindows("3d", "6h", 1, "warning", "10 %"),
)


@dataclass(frozen=True)
class Objective:
    """A request-based SLO: the share of good requests over :data:`PERIOD`."""

    slo: str  # the `slo` label: availability | latency
    alert: str  # its burn-rate alert (and runbook anchor)
    objective: float  # 0.9995
    description: str
    threshold: float | None = None  # latency: seconds within which a request is good

    @property
    def budget(self) -> float:
        """The share of requests that may be bad (1 - objective), rounded past float noise."""
        return round(1 - self.objective, 12)

    def error_ratio(self, window: str) -> str:
        """PromQL: the share of bad requests over ``window``, by job."""
        if self.threshold is None:
            total = f'sum by (job) (rate({REQUESTS}{{job="app"}}[{window}]))'
            # `or 0 * total`: no 5xx series yet is a ratio of 0, not no data.
            return (f'(\n  sum by (job) (rate({REQUESTS}{{job="app", status=~"5.."}}[{window}]))\n'
                    f'    or\n  0 * {total}\n)\n  /\n{total}')
        # As client_python writes a bucket bound (floatToGoString): 0.2, 1.0, 10.0.
        le = repr(float(self.threshold))
        return (f'1 - (\n'
                f'  sum by (job) (rate({DURATION_BUCKET}{{job="app", le="{le}"}}[{window}]))\n'
                f'    /\n'
                f'  sum by (job) (rate({DURATION_BUCKET}{{job="app", le="+Inf"}}[{window}]))\n)')


@dataclass(frozen=True)
class Threshold:
    """One value an alert, ``pitwatch check`` and a board compare a metric with."""

    alert: str | None  # the alert rule using it (None: pitwatch check only)
    severity: str  # warning | critical: the alert's, and check's yellow | red
    metric: str  # the series the rule's expression compares
    value: float  # base units: seconds, bytes, ratios
    bad_when: str  # "above" or "below" the value
    description: str
    quantile: float | None = None  # the quantile the rule reads (histogram_ or _over_time)


@dataclass(frozen=True)
class Spec:
    targets: Targets
    availability: Objective
    latency: Objective
    # The hand-written alerts' thresholds, as the boards name them.
    API_P95: Threshold
    ERROR_RATIO: Threshold
    DB_PROBE_P99: Threshold
    BACKUP_AGE: Threshold
    BACKUP_AGE_EARLY: Threshold
    REPLICA_AGE: Threshold
    REPLICA_AGE_EARLY: Threshold
    RESTORE_DURATION: Threshold
    APP_MEMORY: Threshold
    WAL_SIZE: Threshold
    TLS_WARNING: Threshold
    TLS_CRITICAL: Threshold
    VOLUME_FREE_WARNING: Threshold
    VOLUME_FREE_CRITICAL: Threshold
    SMOKE_LATENCY: Threshold
    REDIS_PING: Threshold

    @property
    def objectives(self) -> tuple[Objective, Objective]:
        return (self.availability, self.latency)

    @property
    def thresholds(self) -> tuple[Threshold, ...]:
        return tuple(v for v in vars(self).values() if isinstance(v, Threshold))


def _percent(ratio: float) -> str:
    return f"{ratio * 100:.10g} %"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.10g} ms"


def spec(targets: Targets | None = None) -> Spec:
    """The SLOs of ``targets`` (a config's ``slo`` section; default: the stated targets)."""
    t = targets or Targets()
    latency_p = f"p{t.latency_objective * 100:.10g}"
    hours = lambda s: f"{s / 3600:.10g} h"
    days = lambda s: f"{s / DAY:.10g} days"
    return Spec(
        targets=t,
        availability=Objective(
            "availability", "AppAvailabilityBudgetBurn", t.availability,
            f"{_percent(t.availability)} of API requests answer without a 5xx status"),
        latency=Objective(
            "latency", "AppLatencyBudgetBurn", t.latency_objective,
            f"{_percent(t.latency_objective)} of API requests finish within "
            f"{_ms(t.latency_threshold)} ({latency_p} < {_ms(t.latency_threshold)})",
            threshold=t.latency_threshold),
        API_P95=Threshold("AppHighLatency", "warning", DURATION_BUCKET, t.latency_threshold,
                          "above", f"API request latency {latency_p} stays under "
                                   f"{_ms(t.latency_threshold)}",
                          quantile=t.latency_objective),
        ERROR_RATIO=Threshold("AppHighErrorRate", "critical", REQUESTS, t.rollback_error_ratio,
                              "above", f"{_percent(t.availability)} of API requests without a 5xx; "
                                       f"a release answering over "
                                       f"{_percent(t.rollback_error_ratio)} 5xx is rolled back"),
        DB_PROBE_P99=Threshold("DatabaseProbeQuerySlow", "warning",
                               "pitwatch_sqlite_probe_query_duration_seconds_bucket",
                               t.db_query_p99, "above",
                               f"the database probe query p99 stays under {_ms(t.db_query_p99)}",
                               quantile=0.99),
        BACKUP_AGE=Threshold("BackupSnapshotTooOld", "critical",
                             "pitwatch_backup_snapshot_last_success_timestamp_seconds", t.rpo,
                             "above", f"RPO: the newest backup is at most {hours(t.rpo)} old"),
        BACKUP_AGE_EARLY=Threshold(None, "warning",
                                   "pitwatch_backup_snapshot_last_success_timestamp_seconds",
                                   t.rpo * t.rpo_early_warning, "above",
                                   f"a backup {_percent(t.rpo_early_warning)} of the RPO old "
                                   "warns"),
        REPLICA_AGE=Threshold(None, "critical",
                              "pitwatch_backup_litestream_last_replica_write_timestamp_seconds",
                              t.rpo, "above",
                              f"RPO: the replica was written at most {hours(t.rpo)} ago"),
        REPLICA_AGE_EARLY=Threshold(
            None, "warning", "pitwatch_backup_litestream_last_replica_write_timestamp_seconds",
            t.rpo * t.rpo_early_warning, "above",
            f"a replica write {_percent(t.rpo_early_warning)} of the RPO old warns"),
        RESTORE_DURATION=Threshold("BackupRestoreTestSlow", "warning",
                                   "pitwatch_backup_restore_test_duration_seconds", t.rto,
                                   "above", f"RTO: the restore test finishes within "
                                            f"{t.rto / 60:.10g} min"),
        APP_MEMORY=Threshold("AppMemoryHigh", "warning",
                             "pitwatch_app_process_resident_memory_bytes", t.app_memory_bytes,
                             "above", f"the app process stays under "
                                      f"{t.app_memory_bytes / 1e9:.10g} GB resident memory"),
        WAL_SIZE=Threshold("DatabaseWalGrowing", "warning", "pitwatch_sqlite_wal_size_bytes",
                           t.wal_size_bytes, "above",
                           f"the WAL stays under {t.wal_size_bytes / 2 ** 20:.10g} MiB"),
        TLS_WARNING=Threshold("TLSCertificateExpiring", "warning",
                              "pitwatch_security_tls_cert_not_after_timestamp_seconds",
                              t.tls_warning, "below",
                              f"a certificate expiring within {days(t.tls_warning)} warns"),
        TLS_CRITICAL=Threshold("TLSCertificateExpiring", "critical",
                               "pitwatch_security_tls_cert_not_after_timestamp_seconds",
                               t.tls_critical, "below",
                               f"a certificate expiring within {days(t.tls_critical)} pages"),
        VOLUME_FREE_WARNING=Threshold("DatabaseVolumeLowSpace", "warning",
                                      "pitwatch_volume_free_bytes", t.volume_free_warning,
                                      "below", f"under {_percent(t.volume_free_warning)} free "
                                               "space on a volume warns"),
        VOLUME_FREE_CRITICAL=Threshold("DatabaseVolumeLowSpace", "critical",
                                       "pitwatch_volume_free_bytes", t.volume_free_critical,
                                       "below", f"under {_percent(t.volume_free_critical)} "
                                                "free space on a volume pages"),
        # The smoke requests' median against the API latency target (AppSmokeSlow).
        SMOKE_LATENCY=Threshold("AppSmokeSlow", "warning", "pitwatch_smoke_duration_seconds",
                                t.latency_threshold, "above",
                                f"smoke requests stay under the {_ms(t.latency_threshold)} "
                                f"API {latency_p} SLO", quantile=0.5),
        REDIS_PING=Threshold(None, "warning", "pitwatch_redis_ping_duration_seconds",
                             t.redis_ping, "above", f"Redis answers PING within "
                                                    f"{_ms(t.redis_ping)}"),
    )


# --- the generated rule file -----------------------------------------------------------

RUNBOOK = "https://github.com/pitwatch/pitwatch/blob/main/alerts/runbook.md"
HEADER = """\
# Generated by `pitwatch slo rules` from pitwatch/core/slo.py and the slo: section of
# pitwatch.yml: change those and run it, do not edit this file (tests/test_slo_rules.py
# fails when the two differ). Multiwindow, multi-burn-rate alerts as in the SRE
# workbook ("Alerting on SLOs"), on the trading app's requests (job "app"):
{objectives}
#
#   slo:sli_error:ratio_rate<window>{{slo, job}}  share of bad requests over the window
#   slo:objective:ratio{{slo}}                    the objective
#   slo:error_budget_remaining:ratio{{slo, job}}  1 - ratio_rate{period} / (1 - objective)
#   slo:burn_rate:ratio_rate1h{{slo, job}}        ratio_rate1h / (1 - objective): 1 spends
#                                               the budget in exactly {period}
#
# One alert per SLO; its labels long_window and short_window tell the four pairs apart.
# Both windows must burn faster than the factor: the long one is the evidence, the
# short one makes the alert resolve soon after the burning stops.
"""


def _block(text: str, indent: int) -> str:
    pad = " " * indent
    return "\n".join(pad + line if line else "" for line in text.splitlines())


def _record(name: str, expr: str, labels: dict[str, str] | None = None) -> str:
    out = f"      - record: {name}\n        expr: |\n{_block(expr, 10)}\n"
    if labels:
        out += "        labels:\n" + "".join(f"          {k}: {v}\n" for k, v in labels.items())
    return out


def _burn_alert(o: Objective, burn: BurnWindows) -> str:
    budget = f"{o.budget:.10g}"
    factor = f"{burn.factor:g}"
    selector = f'{{job="app", slo="{o.slo}"}}'
    expr = (f"slo:sli_error:ratio_rate{burn.long}{selector} / {budget} > {factor}\n"
            f"  and\n"
            f"slo:sli_error:ratio_rate{burn.short}{selector} / {budget} > {factor}")
    description = (f"Over the last {burn.long} (and {burn.short}), {{{{ $labels.job }}}} "
                   f"burned its {o.slo} error budget {{{{ printf \"%.1f\" $value }}}} times as "
                   f"fast as the objective allows ({o.description}): at that pace "
                   f"{burn.budget_spent} of the {PERIOD} budget is gone in {burn.long}.")
    return (f"      - alert: {o.alert}\n"
            f"        expr: |\n{_block(expr, 10)}\n"
            f"        for: {BURN_FOR}\n"
            f"        labels:\n"
            f"          severity: {burn.severity}\n"
            f"          slo: {o.slo}\n"
            f"          long_window: {burn.long}\n"
            f"          short_window: {burn.short}\n"
            f"        annotations:\n"
            f"          summary: The trading app burns its {o.slo} error budget at {factor}x or "
            f"faster.\n"
            f"          description: '{description}'\n"
            f"          value: '{{{{ printf \"%.1f\" $value }}}}x the allowed {o.slo} burn over "
            f"{burn.long}'\n"
            f"          runbook_url: {RUNBOOK}#{o.alert.lower()}\n")


def rules_yaml(s: Spec | None = None) -> str:
    """The text of alerts/rules/slo.yml for ``s`` (default: the stated targets)."""
    s = s or spec()
    objectives = "\n".join(f"#   {o.slo:<13} {o.description}" for o in s.objectives)
    out = HEADER.format(objectives=objectives, period=PERIOD) + "groups:\n"
    joined = "{name}\n  / on (slo) group_left ()\n(1 - slo:objective:ratio)"
    out += "  - name: slo_sli\n    rules:\n"
    for o in s.objectives:
        out += _record("slo:objective:ratio", f"vector({o.objective:.10g})", {"slo": o.slo})
    for window in (w for w in WINDOWS if w not in LONG_WINDOWS):
        for o in s.objectives:
            out += _record(f"slo:sli_error:ratio_rate{window}", o.error_ratio(window),
                           {"slo": o.slo})
    out += _record("slo:burn_rate:ratio_rate1h",
                   joined.format(name="slo:sli_error:ratio_rate1h"))
    out += _record(DB_QUERY_P99, db_query_p99())
    out += f"\n  - name: slo_sli_long\n    interval: {LONG_INTERVAL}\n    rules:\n"
    for window in LONG_WINDOWS:
        for o in s.objectives:
            out += _record(f"slo:sli_error:ratio_rate{window}", o.error_ratio(window),
                           {"slo": o.slo})
    out += _record("slo:error_budget_remaining:ratio",
                   "1 - " + joined.format(name=f"slo:sli_error:ratio_rate{PERIOD}"))
    out += "\n  - name: slo_alerts\n    rules:\n"
    out += "\n".join(_burn_alert(o, burn) for o in s.objectives for burn in BURNS)
    return out


# --- the hand-written rules at other targets --------------------------------------------

# A comparison against a constant: "> 0.2", "< 21 * 86400", "> 64 * 1024 * 1024".
COMPARISON = re.compile(r"(?<![=!<>])(>=|<=|>|<)\s*(?:bool\s+)?([0-9][0-9eE.+*/\s()-]*)")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.Pow: operator.pow}


def arithmetic(text: str) -> float:
    """Value of a constant expression of numbers and + - * / (nothing else is run)."""

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        raise ValueError(f"not a constant: {text!r}")

    return value(ast.parse(text.strip(), mode="eval"))


def comparisons(expr: str) -> list[tuple[str, float, tuple[int, int]]]:
    """Every ``op constant`` of ``expr``: (op, value, span of the constant's text)."""
    out = []
    for m in COMPARISON.finditer(expr):
        rhs, start = m.group(2), m.start(2)
        # Trailing ")" and blanks belong to the enclosing expression.
        while rhs.count(")") > rhs.count("("):
            rhs = rhs[:rhs.rindex(")")]
        rhs = rhs.rstrip()
        try:
            out.append((m.group(1), arithmetic(rhs), (start, start + len(rhs))))
        except (ValueError, SyntaxError):
            continue
    return out


def retarget(rules: dict, s: Spec) -> bool:
    """Move the thresholds of a parsed rule file from the stated targets to ``s``'s, in
    place: in each alert of a threshold (by name and severity), the comparison with the
    stated value. True if anything changed."""
    stated = {(t.alert, t.severity): t for t in spec().thresholds if t.alert}
    changed = False
    for t in s.thresholds:
        old = stated.get((t.alert, t.severity))
        if old is None or math.isclose(old.value, t.value, rel_tol=1e-12):
            continue
        for group in rules.get("groups", []):
            for rule in group.get("rules", []):
                if rule.get("alert") != t.alert or rule.get("labels", {}).get("severity") != t.severity:
                    continue
                expr = rule["expr"]
                for _, value, (a, b) in reversed(comparisons(expr)):
                    if math.isclose(value, old.value, rel_tol=1e-9):
                        expr = f"{expr[:a]}{t.value:.10g}{expr[b:]}"
                        changed = True
                rule["expr"] = expr
    return changed
