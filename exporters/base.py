"""What every pitwatch collector shares: success/duration self-metrics and quiet failures.

A concern subclasses :class:`Concern` and writes ``measure(problems)``, a generator of
metric families. A source that cannot be read appends a short, stable sentence to
``problems`` (or raises); either way the scrape goes on, the families measured so far
are kept, and ``pitwatch_collector_success{collector}`` says 0. The log line is
written once per change of state, not once per scrape.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("pitwatch.exporter")

SUCCESS = "pitwatch_collector_success"
DURATION = "pitwatch_collector_duration_seconds"
SELF_METRICS = (SUCCESS, DURATION)


class Concern(Collector):
    """One collector per concern; subclasses set ``name`` and write ``measure``."""

    name = "concern"

    def __init__(self) -> None:
        self._state_lock = threading.Lock()
        self._last_problems: tuple[str, ...] | None = None
        self.last_problems: tuple[str, ...] = ()

    def measure(self, problems: list[str]) -> Iterator[Metric]:  # pragma: no cover
        raise NotImplementedError

    def checks(self) -> list["Periodic"]:
        """Background checks this collector reads from (started by the exporter)."""
        return []

    def details(self) -> dict[str, str]:
        """What the last run of each background check said, for a person to read."""
        return {}

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        problems: list[str] = []
        families: list[Metric] = []
        try:
            for family in self.measure(problems):
                families.append(family)
        except Exception as exc:  # a broken source must never break the scrape
            problems.append(f"{type(exc).__name__}: {exc}")
        self._note(tuple(problems))
        yield from families
        ok = GaugeMetricFamily(SUCCESS, "1 if the collector read all its sources on this scrape",
                               labels=["collector"])
        ok.add_metric([self.name], 0.0 if problems else 1.0)
        yield ok
        took = GaugeMetricFamily(DURATION, "Seconds the collector took on this scrape",
                                 labels=["collector"])
        took.add_metric([self.name], time.perf_counter() - started)
        yield took

    def _note(self, problems: tuple[str, ...]) -> None:
        with self._state_lock:
            previous, self._last_problems = self._last_problems, problems
            self.last_problems = problems
        if problems == previous:
            return
        if problems:
            log.warning("collector %s failing: %s", self.name, "; ".join(problems))
        elif previous:  # not on the first, healthy scrape
            log.info("collector %s recovered", self.name)


class Combined(Collector):
    """Several concerns as one collector, their self-metrics merged into one family each.

    Exposition must not repeat a metric family; every concern yields its own
    ``pitwatch_collector_success`` sample, so they are gathered here.
    """

    def __init__(self, concerns: Iterable[Concern]):
        self.concerns = list(concerns)

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for concern in self.concerns:
            for family in concern.collect():
                if family.name in SELF_METRICS:
                    if family.name in merged:
                        merged[family.name].samples.extend(family.samples)
                    else:
                        merged[family.name] = family
                else:
                    yield family
        yield from merged.values()


class Periodic:
    """An expensive check run in a background thread every ``interval`` seconds.

    The scrape reads ``latest()``: the cached (result, finished_at, seconds) of the
    last run, or None before the first. A check that returns None had nothing to look
    at yet: it runs again after ``retry`` seconds rather than its whole interval. ``run_once()`` runs it in the caller's
    thread (``pitwatch check``, tests).
    """

    def __init__(self, name: str, interval: float, func, first_delay: float = 0.0,
                 retry: float = 15.0):
        self.name = name
        self.interval = max(float(interval), 0.1)
        self.retry = min(self.interval, retry)
        self.func = func
        self.first_delay = first_delay
        self._lock = threading.Lock()
        self._latest: tuple[object, float, float] | None = None
        self._last_good: tuple[object, float, float] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> object:
        started = time.perf_counter()
        try:
            result = self.func()
        except Exception as exc:  # recorded as the result; the thread lives on
            # The collector reading this result logs it, once per change of state.
            result = CheckError(f"{type(exc).__name__}: {exc}")
            log.debug("background check %s failed: %s", self.name, result)
        took = time.perf_counter() - started
        with self._lock:
            self._latest = (result, time.time(), took)
            if not isinstance(result, CheckError):
                self._last_good = self._latest
        return result

    def latest(self) -> tuple[object, float, float] | None:
        with self._lock:
            return self._latest

    def last_good(self) -> tuple[object, float, float] | None:
        """The latest run that did not raise: its timestamp ages while later runs fail."""
        with self._lock:
            return self._last_good

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name=f"check-{self.name}",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        if self._stop.wait(self.first_delay):
            return
        while not self._stop.is_set():
            result = self.run_once()
            if self._stop.wait(self.retry if result is None else self.interval):
                return


class CheckError(str):
    """A background check that raised: its message, kept as the cached result."""


def every(seconds: float) -> str:
    """'every 5m' for HELP texts."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"every {int(seconds // size)}{unit}"
    return f"every {seconds:g}s"
