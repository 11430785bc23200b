"""The SLO specification (pitwatch.core.slo), the alert rules, `pitwatch check` and the
boards agree: each side is read here and compared with the spec, so a threshold changed
on one side alone fails."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from pitwatch import check
from pitwatch.core import slo
from pitwatch.core.config import Slo as Targets
from pitwatch.dashboards import build
from pitwatch.dashboards import slo as board_slo

RULES = Path(__file__).resolve().parent.parent / "alerts" / "rules"
SPEC = slo.spec()
# Every value moved, so a threshold check.py kept for itself shows against this one.
MOVED = slo.spec(Targets(
    availability=0.999, latency_threshold=0.5, latency_objective=0.9, db_query_p99=0.1,
    app_memory_bytes=2e9, rpo=7200, rto=600, rpo_early_warning=0.5,
    rollback_error_ratio=0.1, volume_free_warning=0.2, volume_free_critical=0.08,
    wal_size_bytes=32 * 1024 * 1024, tls_warning=30 * 86400, tls_critical=10 * 86400,
    redis_ping=0.25))

# --- the alert rules ---------------------------------------------------------------------

_QUANTILE = re.compile(r"\b(?:histogram_quantile|quantile_over_time)\(\s*([0-9.]+)")


def comparisons(expr: str) -> list[tuple[str, float]]:
    return [(op, value) for op, value, _ in slo.comparisons(expr)]


def alert_rules() -> list[dict]:
    return [rule for path in sorted(RULES.glob("*.yml"))
            for group in (yaml.safe_load(path.read_text()) or {}).get("groups", [])
            for rule in group.get("rules", []) if "alert" in rule]


def test_comparison_parser():
    assert comparisons("time() - x > 3600") == [(">", 3600.0)]
    assert comparisons("x - time() < 21 * 86400") == [("<", 21 * 86400.0)]
    assert comparisons("(a > 64 * 1024 * 1024) and (delta(a[15m]) > 0)") == \
        [(">", 64 * 1024 ** 2), (">", 0.0)]
    assert comparisons("histogram_quantile(0.95, sum by (le) (rate(x[5m]))) > 0.2") == \
        [(">", 0.2)]
    assert comparisons("x > bool 1e9") == [(">", 1e9)]
    assert comparisons("x == 0") == []


ALERTED = [t for t in SPEC.thresholds if t.alert]


@pytest.mark.parametrize("target", ALERTED, ids=lambda t: f"{t.alert}-{t.severity}")
def test_alert_rule_uses_the_spec_threshold(target):
    matching = [r for r in alert_rules() if r["alert"] == target.alert
                and r.get("labels", {}).get("severity") == target.severity]
    assert matching, f"no alert {target.alert} with severity {target.severity} in alerts/rules"
    (rule,) = matching
    assert target.metric in rule["expr"], rule["expr"]
    wanted = ">" if target.bad_when == "above" else "<"
    found = comparisons(rule["expr"])
    assert any(op.startswith(wanted) and math.isclose(value, target.value, rel_tol=1e-9)
               for op, value in found), \
        f"{target.alert}: pitwatch.core.slo says {wanted} {target.value}, the rule has {found}"
    quantiles = [float(q) for q in _QUANTILE.findall(rule["expr"])]
    assert quantiles == ([target.quantile] if target.quantile else []), \
        f"{target.alert}: the spec reads quantile {target.quantile}, the rule {quantiles}"


def test_burn_alerts_are_the_generated_ones():
    """Their thresholds come from the spec through the generator; tests/test_slo_rules.py
    holds the shipped file to the generator's output. Here: every pair is there."""
    burn = {(r["alert"], r["labels"]["long_window"], r["labels"]["short_window"]):
            r["labels"]["severity"] for r in alert_rules() if r["alert"].endswith("BudgetBurn")}
    assert burn == {(o.alert, b.long, b.short): b.severity
                    for o in SPEC.objectives for b in slo.BURNS}


# --- pitwatch check ------------------------------------------------------------------------

NOW = 2_000_000_000.0


def _gauge(name: str, value: float, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, "", labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def _probe_histogram(p99: float) -> HistogramMetricFamily:
    # 100 queries spread over (p99 / 2, p99 * 1.01]: p99 lands at 0.99 of the bucket.
    upper = p99 / 2 + (p99 / 2) / 0.99
    return HistogramMetricFamily("pitwatch_sqlite_probe_query_duration_seconds", "",
                                 buckets=[(str(p99 / 2), 0), (repr(upper), 100), ("+Inf", 100)],
                                 sum_value=p99 * 75)


# Metric of a threshold -> (samples making that quantity `value`, the finding judging it).
JUDGED = {
    "pitwatch_app_http_request_duration_seconds_bucket": None,  # Prometheus only: a rate
    "pitwatch_app_http_request_total": None,
    "pitwatch_sqlite_probe_query_duration_seconds_bucket": (
        lambda v: [_probe_histogram(v)], ("database", "probe query")),
    "pitwatch_backup_snapshot_last_success_timestamp_seconds": (
        lambda v: [_gauge("pitwatch_backup_snapshots_retained", 1),
                   _gauge("pitwatch_backup_snapshot_last_success_timestamp_seconds", NOW - v)],
        ("backup", "snapshot age")),
    "pitwatch_backup_litestream_last_replica_write_timestamp_seconds": (
        lambda v: [_gauge("pitwatch_backup_litestream_last_replica_write_timestamp_seconds",
                          NOW - v)], ("backup", "litestream replica")),
    "pitwatch_backup_restore_test_duration_seconds": (
        lambda v: [_gauge("pitwatch_backup_restore_test_ok", 1),
                   _gauge("pitwatch_backup_restore_test_duration_seconds", v)],
        ("backup", "restore test")),
    "pitwatch_app_process_resident_memory_bytes": (
        lambda v: [_gauge("pitwatch_app_process_resident_memory_bytes", v)],
        ("system", "app memory")),
    "pitwatch_sqlite_wal_size_bytes": (
        lambda v: [_gauge("pitwatch_sqlite_size_bytes", 4096),
                   _gauge("pitwatch_sqlite_wal_size_bytes", v)], ("database", "size")),
    "pitwatch_security_tls_cert_not_after_timestamp_seconds": (
        lambda v: [_gauge("pitwatch_security_tls_cert_not_after_timestamp_seconds", NOW + v,
                          source="site.pem")], ("security", "tls site.pem")),
    "pitwatch_volume_free_bytes": (
        lambda v: [_gauge("pitwatch_volume_free_bytes", v * 1e9, volume="database"),
                   _gauge("pitwatch_volume_size_bytes", 1e9, volume="database")],
        ("system", "database volume")),
    "pitwatch_smoke_duration_seconds": (
        lambda v: [_gauge("pitwatch_smoke_success", 1, url="home"),
                   _gauge("pitwatch_smoke_duration_seconds", v, url="home"),
                   _gauge("pitwatch_smoke_status_code", 200, url="home")], ("smoke", "home")),
    "pitwatch_redis_ping_duration_seconds": (
        lambda v: [_gauge("pitwatch_redis_up", 1),
                   _gauge("pitwatch_redis_ping_duration_seconds", v)], ("redis", "up")),
}


def verdict_at(spec: slo.Spec, metric: str, value: float) -> str:
    samples_for, (concern, name) = JUDGED[metric]
    findings = check.evaluate(check.Samples(samples_for(value)), now=NOW, spec=spec)
    (finding,) = [f for f in findings if (f.concern, f.check) == (concern, name)]
    return finding.status


def expected(spec: slo.Spec, metric: str, value: float) -> str:
    """What the spec says of ``value``: red past a critical threshold, yellow past a warning."""
    crossed = {t.severity for t in spec.thresholds if t.metric == metric
               and (value > t.value if t.bad_when == "above" else value < t.value)}
    return check.FAIL if "critical" in crossed else check.WARN if crossed else check.OK


def test_check_judges_every_threshold_or_says_why_not():
    assert {t.metric for t in SPEC.thresholds} == set(JUDGED)


@pytest.mark.parametrize("spec", [SPEC, MOVED], ids=["stated", "moved"])
@pytest.mark.parametrize("target", [t for t in SPEC.thresholds if JUDGED[t.metric]],
                         ids=lambda t: f"{t.metric}-{t.severity}-{t.value:g}")
def test_check_turns_at_the_spec_threshold(spec, target):
    # The same threshold of `spec` (the moved one has other values).
    (mine,) = [t for t in spec.thresholds if (t.metric, t.severity, t.alert) ==
               (target.metric, target.severity, target.alert)]
    step = 1.002 if mine.bad_when == "above" else 0.998
    before, past = mine.value / step, mine.value * step
    assert expected(spec, mine.metric, past) == \
        (check.FAIL if mine.severity == "critical" else check.WARN)
    for value in (before, past):
        assert verdict_at(spec, mine.metric, value) == expected(spec, mine.metric, value), \
            f"check and the spec disagree on {mine.metric} = {value:g}"


# --- the boards --------------------------------------------------------------------------

def test_the_boards_view_is_the_spec():
    for name in ("API_P95", "ERROR_RATIO", "DB_PROBE_P99", "BACKUP_AGE", "RESTORE_DURATION",
                 "APP_MEMORY", "TLS_WARNING", "TLS_CRITICAL", "VOLUME_FREE_WARNING",
                 "VOLUME_FREE_CRITICAL", "SMOKE_LATENCY"):
        assert getattr(board_slo, name) == getattr(SPEC, name), name


def test_every_board_threshold_is_drawn():
    """Each value of dashboards/slo.py is a threshold step of a panel that queries its
    metric, on the boards as the code builds them."""
    models = build.models()
    for target in board_slo.ALL:
        panels = [p for m in models.values() for p in m["panels"]
                  if any(target.metric in t.get("expr", "") for t in p.get("targets", []))]
        values = {s["value"] for p in panels
                  for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]}
        assert target.value in values, f"{target.alert} {target.severity}: {target.value}"


def test_buckets_hold_the_thresholds():
    from pitwatch.exporters import database
    from pitwatch.exporters import flask as instrumentation

    assert SPEC.latency.threshold in instrumentation.HTTP_BUCKETS
    assert {0.05, 0.2} <= set(instrumentation.HTTP_BUCKETS)
    assert SPEC.targets.db_query_p99 in instrumentation.DB_QUERY_BUCKETS
    assert SPEC.targets.db_query_p99 in database.PROBE_BUCKETS
