"""Lint rules for the boards, in the spirit of Grafana's dashboard-linter.

``lint(models)`` returns one line per problem ("board: panel 3 'Title': what"); the
boards are fine when it returns nothing. The linter's rules that apply here: the
datasource, job and instance variables (template-*-rule), job and instance matchers
on every selector (target-job-rule, target-instance-rule), rates over
``$__rate_interval`` (target-rate-interval-rule), a unit on every panel
(panel-units-rule) and counters only through rate/increase (target-counter-agg-rule);
and pitwatch's own: ages are ages, every board carries the annotations.
"""
from __future__ import annotations

import re

from pitwatch.dashboards import units
from pitwatch.dashboards.annotations import annotations
from pitwatch.dashboards.common import COLUMNS, DATASOURCE
from pitwatch.dashboards.selectors import selectors
from pitwatch.dashboards.variables import ALL, FILTERS, has_filter

# A range selector and the function it is passed to: rate(x{a="b"}[5m]) -> ("rate", "5m").
_RANGE = re.compile(r"(\w+)\(\s*(?:[a-zA-Z_:][\w:]*)?\s*(?:\{[^}]*\})?\s*\[([^\]]*)\]")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_COUNTER_FUNCTIONS = {"rate", "irate", "increase"}
_GRAFANA_RANGES = {"$__rate_interval", "$__range", "$__interval"}
# Counters by the naming conventions (histograms' _bucket, _count and _sum are counters).
_COUNTER = re.compile(r"_(total|count|sum|bucket)$")
_JOB_NAME = re.compile(r'\bjob\s*(=|!=|=~|!~)\s*"(?!\$)')
# An age is "now minus a time" (or a time minus now: time left).
_NOW = re.compile(r"\btime\(\s*\)")


def range_problems(expr: str) -> list[str]:
    """Rates must use ``$__rate_interval``; no range may be a hard-coded duration."""
    bare = _STRING.sub('""', expr)
    found = _RANGE.findall(bare)
    problems = []
    if len(found) != bare.count("["):
        problems.append("has a range selector this linter cannot read (subquery?)")
    for function, window in found:
        if function in _COUNTER_FUNCTIONS and window != "$__rate_interval":
            problems.append(f"{function}() over [{window}] instead of [$__rate_interval]")
        elif window not in _GRAFANA_RANGES:
            problems.append(f"{function}() over a fixed [{window}]")
    return problems


def selector_problems(expr: str) -> list[str]:
    """Every selector narrowed by the job and instance variables; counters only rated."""
    problems = []
    for sel in selectors(expr):
        name = sel.name or "{" + sel.matchers.strip() + "}"
        missing = [label for label in FILTERS if not has_filter(sel.matchers, label)]
        if missing:
            problems.append(f"selector {name} has no " + " and no ".join(
                f'{label}=~"${label}" matcher' for label in missing))
        if _COUNTER.search(sel.name) and not (sel.window and sel.function in _COUNTER_FUNCTIONS):
            problems.append(f"counter {sel.name} is not passed through rate() or increase()")
    return problems


def variable_problems(model: dict) -> list[str]:
    variables = {v.get("name"): v for v in model.get("templating", {}).get("list", [])}
    problems = []
    for label in FILTERS:
        variable = variables.get(label)
        if variable is None:
            problems.append(f"no `{label}` variable")
            continue
        query = variable.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query or ""
        if variable.get("type") != "query" or "label_values(" not in query:
            problems.append(f"the `{label}` variable must be a label_values query")
        if variable.get("datasource") != DATASOURCE:
            problems.append(f"the `{label}` variable does not use the `datasource` variable")
        if not (variable.get("includeAll") and variable.get("allValue") == ALL):
            # Grafana's own "All" lists the values: series without the label would vanish.
            problems.append(f"the `{label}` variable needs All = {ALL}")
        if _JOB_NAME.search(query):
            problems.append(f"the `{label}` variable names a job (render renames jobs)")
    return problems


def annotation_problems(model: dict) -> list[str]:
    present = {a.get("name"): a for a in model.get("annotations", {}).get("list", [])}
    problems = []
    for wanted in annotations():
        found = present.get(wanted["name"])
        if found is None:
            problems.append(f"no {wanted['name']!r} annotation")
        elif found.get("datasource") != DATASOURCE or not found.get("expr"):
            problems.append(f"annotation {wanted['name']!r} is not a query of the "
                            "`datasource` variable")
    return problems


def unit_problems(unit: str, exprs: list[str]) -> list[str]:
    """An age (time() minus a timestamp) is shown as an age, and only an age is."""
    ages = any(_NOW.search(expr) for expr in exprs)
    if ages and unit != units.AGE:
        return [f"computes an age (time()) but its unit is {unit!r}, not {units.AGE!r}"]
    if unit == units.AGE and not ages:
        return [f"unit {units.AGE!r} is for ages (time() - timestamp); this panel has none"]
    return []


def _boxes_overlap(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def lint_board(model: dict) -> list[str]:
    name = model.get("uid") or model.get("title") or "?"
    problems = []

    def report(what: str) -> None:
        problems.append(f"{name}: {what}")

    if not model.get("title"):
        report("no title")
    if not model.get("uid"):
        report("no uid")
    variables = model.get("templating", {}).get("list", [])
    sources = [v for v in variables if v.get("type") == "datasource"]
    if len(sources) != 1:
        report(f"{len(sources)} datasource variables, want exactly one")
    elif sources[0].get("name") != "datasource" or sources[0].get("query") != "prometheus":
        report("the datasource variable must be `datasource` of type prometheus")
    for problem in variable_problems(model) + annotation_problems(model):
        report(problem)
    if not any(link.get("url", "").startswith("http") and "runbook" in link.get("url", "")
               for link in model.get("links", [])):
        report("no link to the runbook")

    ids, boxes = set(), []
    for panel in model.get("panels", []):
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        if panel.get("id") in ids or panel.get("id") is None:
            report(f"{where}: id missing or not unique")
        ids.add(panel.get("id"))
        if not (panel.get("title") or "").strip():
            report(f"{where}: no title")
        if not (panel.get("description") or "").strip():
            report(f"{where}: no description")
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if unit not in units.KNOWN:
            report(f"{where}: unit {unit!r} is not one of dashboards.units")
        for problem in unit_problems(unit, [t.get("expr", "") for t in panel.get("targets", [])]):
            report(f"{where}: {problem}")
        if panel.get("datasource") != DATASOURCE:
            report(f"{where}: datasource is not the `datasource` variable")
        targets = panel.get("targets", [])
        if not targets:
            report(f"{where}: no queries")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs):
            report(f"{where}: refIds not unique")
        for target in targets:
            expr = target.get("expr", "")
            if not expr.strip():
                report(f"{where}: empty query {target.get('refId')}")
            if target.get("datasource") != DATASOURCE:
                report(f"{where}: query {target.get('refId')} has its own datasource")
            for problem in range_problems(expr) + selector_problems(expr):
                report(f"{where}: query {target.get('refId')} {problem}")
        box = panel.get("gridPos") or {}
        if not all(isinstance(box.get(k), int) for k in "xywh"):
            report(f"{where}: no gridPos")
            continue
        if box["x"] < 0 or box["y"] < 0 or box["w"] < 1 or box["h"] < 1 \
                or box["x"] + box["w"] > COLUMNS:
            report(f"{where}: gridPos outside the {COLUMNS}-column grid")
        for other_where, other in boxes:
            if _boxes_overlap(box, other):
                report(f"{where}: overlaps {other_where}")
        boxes.append((where, box))
    return problems


def lint(models: dict[str, dict]) -> list[str]:
    """Problems of every board, and uids or titles shared between boards."""
    problems = [p for model in models.values() for p in lint_board(model)]
    for key in ("uid", "title"):
        seen: dict[str, str] = {}
        for name, model in models.items():
            value = model.get(key)
            if value in seen:
                problems.append(f"{name}: {key} {value!r} also used by {seen[value]}")
            seen[value] = name
    return problems
