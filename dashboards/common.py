"""What every board repeats: variables, annotations, panel constructors, links, layout.

Boards stay declarative: a module lists its panels in reading order and
:func:`board` lays them out left to right, wrapping at Grafana's 24 columns.
"""
from __future__ import annotations

import attr
from grafanalib.core import (
    GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
    Annotations,
    Dashboard,
    DashboardLink,
    GridPos,
    Stat,
    Table,
    Target,
    Templating,
    Time,
    TimeSeries,
)

from pitwatch.dashboards import units
from pitwatch.dashboards.annotations import annotations
from pitwatch.dashboards.slo import Slo
from pitwatch.dashboards.variables import DATASOURCE, DATASOURCE_NAME, filtered, templates

# The provisioned datasource (compose/grafana/provisioning/datasources/prometheus.yml).
DATASOURCE_UID = "pitwatch-prometheus"

# Where alerts/runbook.md is read by a person; anchors are the alert names.
RUNBOOK_URL = "https://github.com/pitwatch/pitwatch/blob/main/alerts/runbook.md"

TAG = "pitwatch"
UID_PREFIX = "pitwatch-"
# Grafana's dashboard JSON model version these boards are written for (Grafana 9+).
SCHEMA_VERSION = 36
COLUMNS = 24

GREEN, ORANGE, RED, BLUE = "green", "orange", "red", "blue"


def uid(name: str) -> str:
    return UID_PREFIX + name


def runbook_url(alertname: str) -> str:
    # GitHub's anchor for a "## AlertName" heading is the lower-cased name.
    return f"{RUNBOOK_URL}#{alertname.lower()}"


def runbook_link(alertname: str) -> dict:
    return {"title": f"Runbook: {alertname}", "url": runbook_url(alertname), "targetBlank": True}


def board_link(name: str, title: str) -> dict:
    """A panel link to another board, keeping the time range and the datasource."""
    return {
        "title": f"{title} board",
        "url": f"/d/{uid(name)}?${{__url_time_range}}&${{datasource:queryparam}}",
        "targetBlank": False,
    }


def target(expr: str, legend: str = "", ref: str = "A") -> Target:
    """A query of a panel, narrowed to the board's job and instance variables."""
    return Target(expr=filtered(expr), legendFormat=legend, refId=ref, datasource=DATASOURCE,
                  intervalFactor=1)


def targets(*pairs: tuple[str, str]) -> list[Target]:
    """``(expr, legend)`` pairs -> targets A, B, C, ..."""
    return [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(pairs)]


def steps(base: str = GREEN, *levels: tuple[float, str]) -> list[dict]:
    """Grafana threshold steps: the base colour, then (value, colour) ascending."""
    out = [{"color": base, "value": None}]
    out += [{"color": color, "value": float(value)} for value, color in sorted(levels)]
    return out


class AlertSteps(list):
    """Threshold steps that are alert thresholds: the panel links to their runbooks."""

    def __init__(self, steps: list[dict], alerts: tuple[str, ...]):
        super().__init__(steps)
        self.alerts = alerts


def slo_steps(*slos: Slo, scale: float = 1.0) -> AlertSteps:
    """Threshold steps from SLOs of one quantity (e.g. TLS warning + critical).

    ``scale`` converts the SLO's base unit to the panel's (1000 for milliseconds).
    """
    directions = {s.bad_when for s in slos}
    if len(directions) != 1:
        raise ValueError("SLOs of one panel must agree on their direction")
    values = sorted(s.value * scale for s in slos)
    alerts = tuple(dict.fromkeys(s.alert for s in slos))
    if directions == {"above"}:
        # green until the first threshold, red from the last one, orange between.
        colours = [ORANGE] * (len(values) - 1) + [RED]
        return AlertSteps(steps(GREEN, *zip(values, colours)), alerts)
    colours = [ORANGE] * (len(values) - 1) + [GREEN]
    return AlertSteps(steps(RED, *zip(values, colours)), alerts)


def _links(links, thresholds) -> list[dict]:
    """The panel's links, plus the runbook of every alert its thresholds stand for."""
    out = list(links)
    for alert in getattr(thresholds, "alerts", ()):
        if runbook_url(alert) not in {link["url"] for link in out}:
            out.append(runbook_link(alert))
    return out


def _size(w: int, h: int) -> GridPos:
    return GridPos(h=h, w=w, x=0, y=0)


def stat(title: str, description: str, exprs: list[Target] | str, unit: str, *,
         thresholds: list[dict] | None = None, links: list[dict] = (), w: int = 6, h: int = 4,
         graph: bool = True, mappings: list[dict] = (), text: str = "auto") -> Stat:
    """A big number (the last value), coloured by ``thresholds``."""
    return Stat(
        title=title, description=description, dataSource=DATASOURCE,
        targets=[target(exprs)] if isinstance(exprs, str) else list(exprs),
        format=unit, thresholds=thresholds or steps(BLUE), links=_links(links, thresholds),
        reduceCalc="lastNotNull", graphMode="area" if graph else "none",
        colorMode="value", noValue="No data", mappings=list(mappings), gridPos=_size(w, h),
        textMode=text,
    )


def timeseries(title: str, description: str, exprs: list[Target] | str, unit: str, *,
               thresholds: list[dict] | None = None, links: list[dict] = (), w: int = 12,
               h: int = 8, stack: bool = False, min_zero: bool = True) -> TimeSeries:
    """Lines over time; SLO thresholds are drawn as dashed lines."""
    return TimeSeries(
        title=title, description=description, dataSource=DATASOURCE,
        targets=[target(exprs)] if isinstance(exprs, str) else list(exprs),
        unit=unit, thresholds=thresholds or steps(GREEN), links=_links(links, thresholds),
        thresholdsStyleMode="dashed" if thresholds else "off",
        stacking={"mode": "normal", "group": "A"} if stack else {},
        fillOpacity=30 if stack else 10, valueMin=0 if min_zero else None,
        legendDisplayMode="list", tooltipMode="multi", gridPos=_size(w, h),
    )


def table(title: str, description: str, exprs: list[Target] | str, columns: list[str], *,
          links: list[dict] = (), w: int = 24, h: int = 6) -> Table:
    """The series of an instant query as rows, one column per label in ``columns``."""
    return Table(
        title=title, description=description, dataSource=DATASOURCE,
        targets=[attr.evolve(t, instant=True, format="table")
                 for t in ([target(exprs)] if isinstance(exprs, str) else exprs)],
        unit=units.SHORT, links=list(links), gridPos=_size(w, h),
        # Only the listed labels, in their order: no time, value or metric name.
        transformations=[{"id": "filterFieldsByName",
                          "options": {"include": {"names": list(columns)}}},
                         {"id": "organize", "options": {
                             "indexByName": {c: i for i, c in enumerate(columns)}}}],
    )


# For AGE panels whose query falls back to -1 when nothing happened yet.
NEVER = [{"type": "value", "options": {"-1": {"text": "never", "index": 0}}}]
# For checks that can be switched off: the query falls back to -1 when nothing is exported.
NOT_CHECKED = [{"type": "value",
                "options": {"-1": {"text": "not checked", "color": "text", "index": 0}}}]


def _place(panels: list) -> list:
    """Flow panels left to right and top to bottom; number them 1, 2, 3, ..."""
    placed, x, y, row_height = [], 0, 0, 0
    for number, panel in enumerate(panels, start=1):
        w, h = panel.gridPos.w, panel.gridPos.h
        if w > COLUMNS:
            raise ValueError(f"panel {panel.title!r} is wider than {COLUMNS} columns")
        if x + w > COLUMNS:
            x, y, row_height = 0, y + row_height, 0
        placed.append(attr.evolve(panel, id=number, gridPos=GridPos(h=h, w=w, x=x, y=y)))
        x, row_height = x + w, max(row_height, h)
    return placed


def board(name: str, title: str, description: str, panels: list) -> Dashboard:
    """A pitwatch dashboard: tagged, linked to its siblings and the runbook."""
    return Dashboard(
        title=title,
        uid=uid(name),
        description=description,
        tags=[TAG],
        panels=_place(panels),
        templating=Templating(list=templates()),
        annotations=Annotations(list=annotations()),
        links=[
            DashboardLink(type="dashboards", tags=[TAG], asDropdown=True, title="Boards",
                          includeVars=True, keepTime=True),
            DashboardLink(type="link", uri=RUNBOOK_URL, title="Runbook", icon="doc",
                          targetBlank=True, keepTime=False),
        ],
        time=Time("now-3h", "now"),
        refresh="30s",
        graphTooltip=GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
        schemaVersion=SCHEMA_VERSION,
        editable=False,
        timezone="browser",
    )


__all__ = ["board", "stat", "timeseries", "table", "targets", "target", "steps", "slo_steps",
           "runbook_link", "board_link", "uid", "NEVER", "NOT_CHECKED"]
