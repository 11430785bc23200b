"""The boards' PromQL as Prometheus sees it: Grafana variables substituted, then run.

Used by the promtool syntax test (:func:`promtool_rule_groups`), by the snapshot
renderer and by :func:`panels_without_data`, the check that no panel of the shipped
boards shows "No data" on a running platform. The job and instance variables are
taken as Grafana sends them with "All" chosen (``.*``); the interval variables as
Grafana computes them for the time range.
"""
from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pitwatch.dashboards.variables import as_all

# Grafana's default "scrape interval" of a Prometheus datasource; provisioning sets
# the same (jsonData.timeInterval).
DEFAULT_SCRAPE_INTERVAL = 15.0
_VARIABLE = re.compile(r"\$(?:\{)?(__rate_interval|__interval|__range)(?:\})?(?![\w])")


@dataclass(frozen=True)
class Query:
    board: str        # module name, e.g. "overview"
    dashboard: str    # the board's title
    panel_id: int
    panel: str        # the panel's title
    ref: str
    expr: str         # as written, with Grafana variables
    legend: str
    unit: str
    panel_type: str


class QueryError(Exception):
    """Prometheus refused a query or could not be reached; the message says which."""


def _models(models: dict[str, dict] | None) -> dict[str, dict]:
    if models is None:
        from pitwatch.dashboards.build import models as build_models

        models = build_models()
    return models


def queries(models: dict[str, dict] | None = None) -> list[Query]:
    """Every target of every panel of the generated boards, in board and panel order."""
    models = _models(models)
    out = []
    for board, model in models.items():
        for panel in model.get("panels", []):
            unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit") or ""
            for target in panel.get("targets", []):
                out.append(Query(board, model["title"], panel["id"], panel["title"],
                                 target.get("refId", ""), target.get("expr", ""),
                                 target.get("legendFormat", ""), unit, panel.get("type", "")))
    return out


def annotation_queries(models: dict[str, dict] | None = None) -> list[Query]:
    """The annotation queries of every board (panel 0, refs annotation1, annotation2, ...)."""
    out = []
    for board, model in _models(models).items():
        for number, item in enumerate(model.get("annotations", {}).get("list", []), start=1):
            if item.get("expr"):
                out.append(Query(board, model["title"], 0, item.get("name", ""),
                                 f"annotation{number}", item["expr"], item.get("titleFormat", ""),
                                 "", "annotation"))
    return out


def blank(result: list) -> bool:
    """Whether a query's result shows nothing: no series, or nothing but NaN.

    A ratio of zero requests (0/0) or a quantile of an empty histogram is NaN at every
    step; Grafana then shows "NaN", which tells a person as little as "No data".
    """
    return all(math.isnan(float(value)) for item in result for _, value in item["values"])


@dataclass(frozen=True)
class Window:
    """A time range with Grafana's derived intervals, all in seconds."""

    start: float
    end: float
    step: float
    scrape_interval: float = DEFAULT_SCRAPE_INTERVAL

    @classmethod
    def last(cls, range_seconds: float, scrape_interval: float = DEFAULT_SCRAPE_INTERVAL,
             max_points: int = 100, now: float | None = None) -> "Window":
        end = time.time() if now is None else now
        # Grafana: interval = range / max data points, never below the scrape interval.
        step = max(scrape_interval, math.ceil(range_seconds / max_points), 1)
        return cls(end - range_seconds, end, step, scrape_interval)

    @property
    def rate_interval(self) -> float:
        # Grafana's definition: at least four scrapes, and never less than a step
        # plus one scrape so consecutive points overlap.
        return max(self.step + self.scrape_interval, 4 * self.scrape_interval)

    def substitute(self, expr: str) -> str:
        values = {"__rate_interval": self.rate_interval, "__interval": self.step,
                  "__range": self.end - self.start}
        return _VARIABLE.sub(lambda m: f"{int(math.ceil(values[m.group(1)]))}s", as_all(expr))


def substitute(expr: str, rate_interval: str = "1m", interval: str = "15s",
               range_: str = "1h") -> str:
    """``expr`` with Grafana's variables replaced by fixed durations (for syntax checks)."""
    values = {"__rate_interval": rate_interval, "__interval": interval, "__range": range_}
    return _VARIABLE.sub(lambda m: values[m.group(1)], as_all(expr))


def promtool_rule_groups(items: list[Query] | None = None) -> dict:
    """A rule file (as a dict) with one recording rule per target, for ``promtool check rules``.

    Rule names say where the expression comes from, so promtool's error points at it.
    """
    items = queries() if items is None else items
    rules = [{"record": f"dashboards:{q.board}:panel{q.panel_id}_{q.ref}",
              "expr": substitute(q.expr)} for q in items]
    return {"groups": [{"name": "dashboards", "rules": rules}]}


def query_range(prometheus_url: str, expr: str, window: Window, timeout: float = 15.0) -> list:
    """``/api/v1/query_range`` -> the ``result`` list (one dict per series)."""
    data = urllib.parse.urlencode({"query": window.substitute(expr), "start": f"{window.start:.3f}",
                                   "end": f"{window.end:.3f}", "step": f"{window.step:g}"})
    url = prometheus_url.rstrip("/") + "/api/v1/query_range"
    try:
        with urllib.request.urlopen(url, data=data.encode(), timeout=timeout) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as exc:
        # Prometheus answers 400/422 with a JSON error naming the problem.
        try:
            body = json.load(exc)
        except ValueError:
            raise QueryError(f"{url}: HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        raise QueryError(f"{url}: {exc}") from None
    if body.get("status") != "success":
        raise QueryError(f"{body.get('errorType', 'error')}: {body.get('error')} in {expr!r}")
    return body["data"]["result"]


def run(prometheus_url: str, items: list[Query], window: Window,
        workers: int = 4) -> dict[Query, list]:
    """Run every query over ``window``; a few in parallel, Prometheus handles that well."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda q: query_range(prometheus_url, q.expr, window), items)
        return dict(zip(items, results))


def panels_without_data(prometheus_url: str, range_seconds: float = 300.0,
                        scrape_interval: float = DEFAULT_SCRAPE_INTERVAL,
                        models: dict[str, dict] | None = None) -> list[tuple[str, str, str]]:
    """(dashboard title, panel title, expr) of every target that returns no series.

    Grafana shows "No data" exactly when a panel's queries return no series; on a
    healthy running platform the shipped boards should give an empty list. NaN-only
    series are not counted here: a quantile of events that did not happen in the range
    (no remediation ran) is NaN on a healthy platform too; snapshots name them.
    """
    items = queries(models)
    window = Window.last(range_seconds, scrape_interval)
    results = run(prometheus_url, items, window)
    return [(q.dashboard, q.panel, q.expr) for q in items if not results[q]]
