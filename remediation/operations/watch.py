"""Watching a release after a switch: does it keep the service level objectives?

A deploy or rollback that passed its health gate is watched for ``platform.deploy_watch``.
Every round (:data:`STEP`) reads two kinds of evidence:

- the app's own ``/metrics`` (when ``platform.instrumented``): requests and 5xx from
  ``pitwatch_app_http_request_total``, slow requests from the duration histogram's
  bucket at the latency threshold. Counted as increases since the watch began (a
  counter that went down belongs to a new process: counted from 0, as Prometheus's
  ``increase`` does), so only requests served since the switch count;
- the health URL and the smoke URLs (``pitwatch.core.smoke``), one request each.

Each is judged against the SLO specification (``pitwatch.core.slo``): a breach is a 5xx
share above the rollback error ratio, or a share of requests slower than the latency
threshold above what the latency objective allows (p95 over 200 ms by default). The
evidence accumulates from the start, so a bad release is found as soon as enough of
its requests show it — seconds under real traffic — and a good one is watched to the
end. A few odd requests never decide: a share counts from :data:`MIN_REQUESTS` requests
and :data:`MIN_BAD` bad ones, and breaches only when even the low end of its 95 %
confidence interval (Wilson) is above the threshold. Three slow requests of fifty on a
busy host are noise; forty 5xx of fifty are not.
"""
from __future__ import annotations

import math
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Callable

from pitwatch.core import slo
from pitwatch.core.config import Config, Platform, Slo
from pitwatch.core.smoke import Target, probe

from pitwatch.remediation.operations import appcontrol

STEP = 1.0  # seconds between rounds
MIN_REQUESTS = 20
MIN_BAD = 3
Z = 1.645  # one-sided 95 %


def lower_bound(bad: float, n: float) -> float:
    """Low end of the one-sided 95 % Wilson interval of the share ``bad / n``."""
    p = bad / n
    centre = p + Z * Z / (2 * n)
    spread = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + Z * Z / n))


@dataclass
class Tally:
    """Requests seen since the watch began, and how many were bad."""

    requests: float = 0
    errors: float = 0
    slow: float = 0


@dataclass
class Verdict:
    passed: bool
    reason: str  # "passed: …" or what breached
    seconds: float  # from the start of the watch to the verdict
    app: Tally = field(default_factory=Tally)
    probes: Tally = field(default_factory=Tally)

    @property
    def summary(self) -> str:
        return f"{'passed' if self.passed else 'breached'}: {self.reason}"


def read_counts(text: str, threshold: float) -> dict[tuple, float]:
    """Per series: requests ('n', labels), 5xx ('e', labels), finished within the latency
    threshold ('fast', labels) and all timed ('timed', labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            if s.name == slo.REQUESTS:
                out[("n", labels)] = s.value
                if s.labels.get("status", "").startswith("5"):
                    out[("e", labels)] = s.value
            elif s.name == slo.DURATION_BUCKET:
                le = float(s.labels.get("le", "nan"))
                if le == threshold:
                    out[("fast", labels)] = s.value
                elif le == float("inf"):
                    out[("timed", labels)] = s.value
    return out


class AppMetrics:
    """Increases of the app's request counters since the first read."""

    def __init__(self, url: str, threshold: float, timeout: float = 5.0):
        self.url, self.threshold, self.timeout = url, threshold, timeout
        self.last: dict[tuple, float] | None = None
        self.sum: dict[str, float] = {"n": 0.0, "e": 0.0, "fast": 0.0, "timed": 0.0}

    def read(self) -> None:
        """Raises OSError or ValueError when /metrics cannot be read or parsed."""
        req = urllib.request.Request(self.url, headers={"User-Agent": "pitwatch-deploy-watch"})
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                req, timeout=self.timeout) as r:
            self.add(r.read().decode("utf-8", "replace"))

    def add(self, text: str) -> None:
        """Count one /metrics page: the increases since the previous one."""
        now = read_counts(text, self.threshold)
        if self.last is not None:
            for key, value in now.items():
                before = self.last.get(key, 0.0)
                self.sum[key[0]] += value - before if value >= before else value
        self.last = now

    def tally(self) -> Tally:
        s = self.sum
        return Tally(s["n"], s["e"], max(0.0, s["timed"] - s["fast"]))


def breach(t: Tally, targets: Slo, what: str) -> str | None:
    """Why ``t`` breaks the SLO thresholds, or None."""
    if t.requests < MIN_REQUESTS:
        return None
    if t.errors >= MIN_BAD and lower_bound(t.errors, t.requests) > targets.rollback_error_ratio:
        return (f"{what}: {t.errors:.0f} of {t.requests:.0f} requests failed "
                f"({t.errors / t.requests:.1%}, at least {lower_bound(t.errors, t.requests):.1%}"
                f" > {targets.rollback_error_ratio:.1%})")
    allowed = round(1 - targets.latency_objective, 12)
    if t.slow >= MIN_BAD and lower_bound(t.slow, t.requests) > allowed:
        return (f"{what}: {t.slow:.0f} of {t.requests:.0f} requests slower than "
                f"{targets.latency_threshold * 1000:g} ms ({t.slow / t.requests:.1%}, at least "
                f"{lower_bound(t.slow, t.requests):.1%} > {allowed:.1%})")
    return None


@dataclass
class Watch:
    """What to watch a release with, and for how long."""

    platform: Platform
    targets: Slo
    probes: list[Target]
    metrics_url: str | None  # None: the app is not instrumented
    seconds: float

    def run(self, say: Callable[[str], None] = print) -> Verdict:
        began = time.monotonic()
        app = AppMetrics(self.metrics_url, self.targets.latency_threshold) \
            if self.metrics_url else None
        probes = Tally()

        def read_app() -> None:
            nonlocal app
            try:
                app.read()
            except (OSError, ValueError) as exc:
                say(f"  app metrics unreadable ({exc}); judging by the smoke requests only")
                app = None

        if app:
            read_app()
        say(f"watching for {self.seconds:g}s: 5xx over {self.targets.rollback_error_ratio:.1%} "
            f"or over {1 - self.targets.latency_objective:.0%} of requests slower than "
            f"{self.targets.latency_threshold * 1000:g} ms rolls back")
        while True:
            for target in self.probes:
                r = probe(target)
                probes.requests += 1
                probes.errors += not r.success
                probes.slow += r.duration > self.targets.latency_threshold
            if app:
                read_app()
            seen = app.tally() if app else Tally()
            reason = breach(seen, self.targets, "app") or breach(probes, self.targets, "smoke")
            took = time.monotonic() - began
            if reason:
                return Verdict(False, reason, took, seen, probes)
            if took >= self.seconds:
                what = (f"{seen.requests:.0f} requests, {seen.errors:.0f} 5xx, {seen.slow:.0f} "
                        f"slow" if app else "app metrics not read")
                return Verdict(True, f"{took:.0f}s, {what}; {probes.requests:.0f} smoke "
                                     f"requests, {probes.errors:.0f} failed", took, seen, probes)
            time.sleep(min(STEP, max(0.0, self.seconds - took)))


def from_config(cfg: Config, seconds: float | None = None) -> Watch | None:
    """The watch of ``cfg`` (``seconds`` overrides platform.deploy_watch); None when 0."""
    seconds = cfg.platform.deploy_watch if seconds is None else seconds
    if seconds <= 0:
        return None
    job = cfg.monitoring.jobs.get("app")
    path = job.metrics_path if job else "/metrics"
    return Watch(cfg.platform, cfg.slo, appcontrol.health_targets(cfg.platform, cfg.smoke),
                 cfg.platform.app_url + path if cfg.platform.instrumented else None, seconds)
