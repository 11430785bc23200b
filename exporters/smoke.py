"""``smoke``: availability and latency of the app from outside, without instrumenting it.

Blackbox style: each configured URL (default: the app's health URL) is requested in the
background every ``smoke.interval`` the way a user's client would; the scrape reads the
last result. An app that exports no request metrics of its own is still judged by
AppSmokeFailing and AppSmokeSlow.

A failed request is a measurement (``pitwatch_smoke_success 0``), not a collector failure:
the collector only fails when a probe itself breaks.
"""
from __future__ import annotations

from typing import Iterator, Sequence

from prometheus_client.core import GaugeMetricFamily, Metric

from pitwatch.core.smoke import Result, Target, probe, public_label, targets_from_config
from pitwatch.exporters.base import CheckError, Concern, Periodic, every

__all__ = ["SmokeCollector", "Result", "Target", "probe", "public_label", "targets_from_config"]


class SmokeCollector(Concern):
    name = "smoke"

    def __init__(self, targets: Sequence[Target], interval: float = 15.0):
        super().__init__()
        self.targets = list(targets)
        self.interval = interval
        labels = [t.label for t in self.targets]
        if len(set(labels)) != len(labels):
            dupe = next(label for label in labels if labels.count(label) > 1)
            raise ValueError(f"smoke: two URLs share the label {dupe!r}: give them names")
        # One thread per URL: a URL timing out never delays the others' results.
        self._checks = {t.label: Periodic(f"smoke {t.label}", interval, lambda t=t: probe(t))
                        for t in self.targets}

    def checks(self) -> list[Periodic]:
        return list(self._checks.values())

    def results(self, problems: list[str]) -> dict[str, Result]:
        out = {}
        for label, check in self._checks.items():
            latest = check.latest()
            if latest is None:
                continue  # not probed yet: absent rather than a false "down"
            if isinstance(latest[0], CheckError):
                problems.append(f"{check.name}: {latest[0]}")
                continue
            out[label] = latest[0]
        return out

    def measure(self, problems: list[str]) -> Iterator[Metric]:
        results = self.results(problems)
        if not results:
            return
        how = f"probed {every(self.interval)} in the background"
        families = {
            "success": GaugeMetricFamily(
                "pitwatch_smoke_success",
                f"1 if the URL answered with an expected status within its timeout ({how})",
                labels=["url"]),
            "status": GaugeMetricFamily(
                "pitwatch_smoke_status_code",
                f"HTTP status of the last smoke request; 0 when nothing answered ({how})",
                labels=["url"]),
            "duration": GaugeMetricFamily(
                "pitwatch_smoke_duration_seconds",
                f"Seconds the last smoke request took, body included ({how})", labels=["url"]),
            "finished": GaugeMetricFamily(
                "pitwatch_smoke_timestamp_seconds",
                f"When the last smoke request finished ({how})", labels=["url"]),
        }
        for label, r in results.items():
            families["success"].add_metric([label], 1.0 if r.success else 0.0)
            families["status"].add_metric([label], float(r.status))
            families["duration"].add_metric([label], r.duration)
            families["finished"].add_metric([label], r.finished)
        yield from families.values()

    def details(self) -> dict[str, str]:
        out = {}
        for label, check in self._checks.items():
            latest = check.latest()
            if latest is not None and not isinstance(latest[0], CheckError) and latest[0].error:
                out[label] = latest[0].error
        return out
