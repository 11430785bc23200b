"""Render every board from real Prometheus range queries into one PNG per board.

For a person without Grafana (and for the tests): the panels sit where Grafana puts
them (gridPos on the 24-column grid), stat panels show their last value as a big number
coloured by the thresholds, time series are lines with their threshold lines dashed,
tables list their series' labels, and a panel whose queries return nothing says
"No data", as Grafana would. Queries without data and queries whose every value is NaN
(as blind as no data) are returned, so the command can name them.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pitwatch.dashboards import units
from pitwatch.dashboards.queries import (
    DEFAULT_SCRAPE_INTERVAL, Query, Window, blank, queries, run,
)

# Grafana's dark theme, near enough.
BACKGROUND, PANEL, TEXT, MUTED = "#111217", "#181b1f", "#ccccdc", "#8e8e8e"
COLOURS = {"green": "#73bf69", "orange": "#ff9830", "red": "#f2495c", "blue": "#5794f2",
           "yellow": "#fade2a"}
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9",
           "#705da0", "#37872d", "#fade2a"]
ROW_INCHES = 0.34   # one grid unit is 30 px in Grafana
WIDTH_INCHES = 18.0
HEADER, MARGIN, GAP, TITLE = 0.55, 0.15, 0.08, 0.28   # inches
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass
class BoardSnapshot:
    board: str
    title: str
    path: Path
    # (panel title, expr) of every query that returned no series.
    no_data: list[tuple[str, str]] = field(default_factory=list)
    # (panel title, expr) of every query whose series hold nothing but NaN.
    nan_only: list[tuple[str, str]] = field(default_factory=list)


def _legend(fmt: str, labels: dict) -> str:
    if fmt:
        return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), fmt).strip() or fmt
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(shown.items())) + "}"


def _series(query: Query, result: list) -> list[tuple[str, list[float], list[float]]]:
    out = []
    for item in result:
        times = [float(t) for t, _ in item.get("values", [])]
        values = [float(v) for _, v in item.get("values", [])]
        out.append((_legend(query.legend, item.get("metric", {})), times, values))
    return out


def _colour(value: float, panel: dict) -> str:
    mapped = _mapped(value, panel)
    if mapped and mapped.get("color"):
        return TEXT if mapped["color"] == "text" else COLOURS.get(mapped["color"], mapped["color"])
    steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps")
    colour = "blue"
    for step in steps or []:
        if step.get("value") is None or (not math.isnan(value) and value >= step["value"]):
            colour = step.get("color", colour)
    return COLOURS.get(colour, colour)


def _mapped(value: float, panel: dict) -> dict | None:
    """The value mapping that applies to ``value``, if any."""
    for mapping in panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", []):
        options = mapping.get("options", {}) if mapping.get("type") == "value" else {}
        for raw, shown in options.items():
            try:
                if float(raw) == value:
                    return {"text": raw, **shown}
            except ValueError:
                continue
    return None


def _text(value: float, panel: dict) -> str:
    mapped = _mapped(value, panel)
    if mapped:
        return mapped["text"]
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
    return units.format_value(value, unit)


class _Box:
    """A panel's rectangle in figure coordinates (0..1), from its gridPos."""

    def __init__(self, grid: dict, rows: int, fig_height: float):
        usable = WIDTH_INCHES - 2 * MARGIN
        self.left = (MARGIN + grid["x"] / 24 * usable + GAP / 2) / WIDTH_INCHES
        self.width = (grid["w"] / 24 * usable - GAP) / WIDTH_INCHES
        top_in = HEADER + grid["y"] * ROW_INCHES + GAP / 2
        self.height = (grid["h"] * ROW_INCHES - GAP) / fig_height
        self.bottom = 1 - top_in / fig_height - self.height
        self.fig_height = fig_height

    def inner(self, left: float = 0.0, right: float = 0.0, top: float = 0.0,
              bottom: float = 0.0) -> list[float]:
        """[left, bottom, width, height] inset by margins given in inches."""
        return [self.left + left / WIDTH_INCHES, self.bottom + bottom / self.fig_height,
                self.width - (left + right) / WIDTH_INCHES,
                self.height - (top + bottom) / self.fig_height]

    def at(self, fx: float, fy: float) -> tuple[float, float]:
        """A point of the area below the title, as fractions of it."""
        x, y, w, h = self.inner(top=TITLE)
        return x + fx * w, y + fy * h


def _frame(fig, box: _Box, title: str) -> None:
    from matplotlib.patches import Rectangle

    fig.patches.append(Rectangle((box.left, box.bottom), box.width, box.height,
                                 transform=fig.transFigure, facecolor=PANEL,
                                 edgecolor="#2c3235", linewidth=0.8, zorder=-1))
    fig.text(box.left + 0.08 / WIDTH_INCHES, box.bottom + box.height - 0.06 / box.fig_height,
             title, ha="left", va="top", color=TEXT, fontsize=9, fontweight="bold")


def _no_data(fig, box: _Box) -> None:
    x, y = box.at(0.5, 0.5)
    fig.text(x, y, "No data", ha="center", va="center", color=COLOURS["orange"], fontsize=14,
             fontweight="bold")


def _sparkline(fig, box: _Box, times: list[float], values: list[float], colour: str) -> None:
    from matplotlib.lines import Line2D

    points = [(t, v) for t, v in zip(times, values) if math.isfinite(v)]
    if len(points) < 2:
        return
    lo, hi = min(v for _, v in points), max(v for _, v in points)
    t0, t1 = points[0][0], points[-1][0]
    left, bottom, width, height = box.inner(left=0.05, right=0.05, bottom=0.05, top=TITLE)
    height *= 0.35
    xs = [left + width * (t - t0) / ((t1 - t0) or 1) for t, _ in points]
    # A flat line sits at a third of the strip, as Grafana draws it.
    ys = [bottom + height * ((v - lo) / (hi - lo) if hi > lo else 0.33) for _, v in points]
    fig.lines.append(Line2D(xs, ys, transform=fig.transFigure, color=colour, linewidth=1,
                            alpha=0.8))


def _draw_stat(fig, box: _Box, panel: dict, series: list) -> None:
    last = []
    for legend, times, values in series:
        finite = [v for v in values if not math.isnan(v)]
        last.append((legend, finite[-1] if finite else (values[-1] if values else math.nan),
                     times, values))
    text_mode = panel.get("options", {}).get("textMode", "auto")
    if len(last) == 1 and text_mode in ("auto", "value"):
        legend, value, times, values = last[0]
        colour = _colour(value, panel)
        if panel.get("options", {}).get("graphMode") == "area":
            _sparkline(fig, box, times, values, colour)
        x, y = box.at(0.5, 0.6)
        fig.text(x, y, _text(value, panel), ha="center", va="center", color=colour,
                 fontsize=20, fontweight="bold")
        return
    # Several series (or a name to show): one line each, as Grafana's stat tiles.
    shown = last[:8]
    size = max(7, min(14, 40 // max(len(shown), 1)))
    for i, (legend, value, _, _) in enumerate(shown):
        x, y = box.at(0.5, 1 - (i + 0.5) / len(shown))
        label = legend if text_mode == "name" else f"{legend}: {_text(value, panel)}"
        fig.text(x, y, label, ha="center", va="center", color=_colour(value, panel),
                 fontsize=size, fontweight="bold")
    if len(last) > len(shown):
        x, y = box.at(0.98, 0.02)
        fig.text(x, y, f"+{len(last) - len(shown)} more", ha="right", va="bottom",
                 color=MUTED, fontsize=7)


def _table_columns(panel: dict) -> list[str]:
    for step in panel.get("transformations", []):
        if step.get("id") == "filterFieldsByName":
            return step["options"]["include"]["names"]
    return []


def _draw_table(fig, box: _Box, panel: dict, rows: list[dict]) -> None:
    columns = _table_columns(panel) or sorted({k for row in rows for k in row} - {"__name__"})
    lines = [columns] + [[row.get(c, "") for c in columns] for row in rows[:10]]
    for i, cells in enumerate(lines):
        for j, cell in enumerate(cells):
            x, y = box.at((j + 0.05) / len(columns), 1 - (i + 0.5) / max(len(lines), 4))
            fig.text(x, y, cell, ha="left", va="center", fontsize=8,
                     color=MUTED if i == 0 else TEXT, fontweight="bold" if i == 0 else "normal")


def _draw_timeseries(fig, box: _Box, panel: dict, series: list, window: Window) -> None:
    import matplotlib.dates as mdates
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax = fig.add_axes(box.inner(left=0.75, right=0.12, top=TITLE + 0.05, bottom=0.3))
    ax.set_facecolor(PANEL)
    for spine in ax.spines.values():
        spine.set_visible(False)
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
    for i, (legend, times, values) in enumerate(series[:12]):
        stamps = [datetime.fromtimestamp(t, timezone.utc) for t in times]
        ax.plot(stamps, values, label=legend, color=PALETTE[i % len(PALETTE)], linewidth=1.2)
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    if defaults.get("custom", {}).get("thresholdsStyle", {}).get("mode", "off") != "off":
        for step in defaults.get("thresholds", {}).get("steps", []):
            if step.get("value") is not None:
                ax.axhline(step["value"], color=COLOURS.get(step["color"], step["color"]),
                           linestyle="--", linewidth=1)
    if defaults.get("min") == 0:
        ax.set_ylim(bottom=0)
    ax.set_xlim(datetime.fromtimestamp(window.start, timezone.utc),
                datetime.fromtimestamp(window.end, timezone.utc))
    short = window.end - window.start <= 1800
    ax.xaxis.set_major_locator(MaxNLocator(6))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S" if short else "%H:%M",
                                                      tz=timezone.utc))
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: units.format_value(v, unit)))
    ax.tick_params(colors=MUTED, labelsize=7, length=0)
    ax.grid(color="#2c3235", linewidth=0.5)
    ax.legend(loc="upper left", fontsize=7, frameon=False, labelcolor=TEXT,
              ncol=min(4, max(1, len(series))))


def render_board(model: dict, results: dict[Query, list], window: Window, path: Path,
                 source: str = "") -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Draw one board into ``path``; return (panel, expr) of the queries without data,
    and of those with nothing but NaN."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = model.get("panels", [])
    rows = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels), default=1)
    fig_height = HEADER + rows * ROW_INCHES + MARGIN
    fig = plt.figure(figsize=(WIDTH_INCHES, fig_height), facecolor=BACKGROUND)
    span = f"{datetime.fromtimestamp(window.start, timezone.utc):%Y-%m-%d %H:%M:%S} to " \
           f"{datetime.fromtimestamp(window.end, timezone.utc):%H:%M:%S} UTC"
    fig.text(MARGIN / WIDTH_INCHES, 1 - 0.15 / fig_height,
             f"{model.get('title')}    {span}    {source}", ha="left", va="top", color=TEXT,
             fontsize=12, fontweight="bold")
    by_panel: dict[int, list[Query]] = {}
    for query in results:
        by_panel.setdefault(query.panel_id, []).append(query)
    no_data, nan_only = [], []
    for panel in panels:
        box = _Box(panel["gridPos"], rows, fig_height)
        _frame(fig, box, panel.get("title", ""))
        series, labels = [], []
        for query in by_panel.get(panel["id"], []):
            found = _series(query, results[query])
            if not found:
                no_data.append((panel.get("title", ""), query.expr))
            elif blank(results[query]):
                nan_only.append((panel.get("title", ""), query.expr))
            series += found
            labels += [item.get("metric", {}) for item in results[query]]
        if not series:
            _no_data(fig, box)
        elif panel.get("type") == "table":
            _draw_table(fig, box, panel, labels)
        elif panel.get("type") == "stat":
            _draw_stat(fig, box, panel, series)
        else:
            _draw_timeseries(fig, box, panel, series, window)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, facecolor=BACKGROUND)
    plt.close(fig)
    return no_data, nan_only


def snapshot(prometheus_url: str, out: Path, range_seconds: float = 900.0,
             scrape_interval: float = DEFAULT_SCRAPE_INTERVAL,
             models: dict[str, dict] | None = None, now: float | None = None
             ) -> list[BoardSnapshot]:
    """One ``<board>.png`` per board in ``out``, from ``prometheus_url``."""
    if models is None:
        from pitwatch.dashboards.build import models as build_models

        models = build_models()
    window = Window.last(range_seconds, scrape_interval, now=now)
    out = Path(out)
    snapshots = []
    for board, model in models.items():
        items = [q for q in queries({board: model})]
        results = run(prometheus_url, items, window)
        path = out / f"{board}.png"
        missing, nan_only = render_board(model, results, window, path, source=prometheus_url)
        snapshots.append(BoardSnapshot(board, model.get("title", board), path, missing,
                                       nan_only))
    return snapshots
