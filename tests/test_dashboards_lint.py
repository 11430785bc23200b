"""The lint rules from Grafana's dashboard-linter that apply to the boards, and the job
and instance filter every query carries: each rule fails on a broken example and
passes the shipped boards."""
from __future__ import annotations

import copy

import pytest

from pitwatch import blind, render
from pitwatch.dashboards import build, lint, units
from pitwatch.dashboards.selectors import selectors, with_matchers
from pitwatch.dashboards.variables import FILTER, filtered


@pytest.fixture(scope="module")
def models() -> dict[str, dict]:
    return build.models()


# --- the filter ------------------------------------------------------------------------

@pytest.mark.parametrize("expr, want", [
    ("up", 'up{a="b"}'),
    ('up{job="app"}', 'up{job="app", a="b"}'),
    ('x{le="+Inf",}', 'x{le="+Inf", a="b"}'),
    ('time() - max({__name__=~"x|y"})', 'time() - max({__name__=~"x|y", a="b"})'),
    ('histogram_quantile(0.95, sum by (le) (rate(x_bucket{k="}"}[$__rate_interval])))',
     'histogram_quantile(0.95, sum by (le) (rate(x_bucket{k="}", a="b"}[$__rate_interval])))'),
    ("a / ignoring(x) group_left max(b) or on() vector(0)",
     'a{a="b"} / ignoring(x) group_left max(b{a="b"}) or on() vector(0)'),
    ("slo:sli_error:ratio_rate1h offset 5m > bool 1e9",
     'slo:sli_error:ratio_rate1h{a="b"} offset 5m > bool 1e9'),
    ("label_replace(vector(0), 'name', 'x', '', '')", "label_replace(vector(0), 'name', 'x', '', '')"),
])
def test_matchers_are_merged_into_every_selector(expr, want):
    assert with_matchers(expr, 'a="b"') == want
    assert with_matchers(want, 'a="b"') == want  # once is enough


def test_selectors_know_their_function_and_range():
    (sel,) = selectors("sum(rate(x_total[5m]))")
    assert (sel.name, sel.window, sel.function) == ("x_total", "5m", "rate")
    (sel,) = selectors("sum by (le) (x_bucket)")
    assert (sel.name, sel.window, sel.function) == ("x_bucket", None, None)


def test_every_shipped_query_is_filtered_by_job_and_instance(models):
    exprs = [t["expr"] for m in models.values() for p in m["panels"] for t in p["targets"]]
    found = [sel for expr in exprs for sel in selectors(expr)]
    assert len(found) > 80
    assert all(FILTER in sel.matchers for sel in found)


def test_render_and_blind_leave_the_variables_alone():
    # Both read `job="…"` matchers as scrape roles: the filter must not look like one.
    expr = filtered('up{job="app"} == 0')
    assert render.rename_jobs(expr, {"app": "journal"}) == expr.replace('"app"', '"journal"')
    assert blind.JOB.findall(expr) == ["app"]


# --- each rule catches a broken board --------------------------------------------------

def _panel(model: dict, title: str) -> dict:
    return next(p for p in model["panels"] if p["title"] == title)


def _variable(model: dict, name: str) -> dict:
    return next(v for v in model["templating"]["list"] if v["name"] == name)


def _set_expr(panel: dict, expr: str) -> None:
    panel["targets"][0]["expr"] = expr


MUTATIONS = {
    "no job variable": (
        lambda m: m["templating"].update(list=[v for v in m["templating"]["list"]
                                               if v["name"] != "job"]),
        "no `job` variable"),
    "no instance variable": (
        lambda m: m["templating"].update(list=[v for v in m["templating"]["list"]
                                               if v["name"] != "instance"]),
        "no `instance` variable"),
    "variable names a job": (
        lambda m: _variable(m, "instance").update(query='label_values(up{job="app"}, instance)'),
        "names a job"),
    "variable without All = .*": (
        lambda m: _variable(m, "job").pop("allValue"), "needs All"),
    "variable of a fixed list": (
        lambda m: _variable(m, "job").update(type="custom", query="app,exporter"),
        "label_values query"),
    "variable of another datasource": (
        lambda m: _variable(m, "job").update(datasource={"type": "prometheus", "uid": "x"}),
        "does not use the `datasource` variable"),
    "target without job matcher": (
        lambda m: _set_expr(_panel(m, "App memory"),
                            'max(pitwatch_app_process_resident_memory_bytes{instance =~ "$instance"})'),
        'no job=~"$job" matcher'),
    "target without instance matcher": (
        lambda m: _set_expr(_panel(m, "App memory"),
                            'max(pitwatch_app_process_resident_memory_bytes{job =~ "$job"})'),
        'no instance=~"$instance" matcher'),
    "raw counter": (
        lambda m: _set_expr(_panel(m, "Trades per minute"), filtered(
            "sum(pitwatch_app_trades_processed_total)")),
        "counter pitwatch_app_trades_processed_total is not passed through rate()"),
    "counter in a *_over_time": (
        lambda m: _set_expr(_panel(m, "Trades per minute"), filtered(
            "sum(max_over_time(pitwatch_app_trades_processed_total[$__range]))")),
        "is not passed through rate()"),
    "age in seconds": (
        lambda m: _panel(m, "Newest backup age")["fieldConfig"]["defaults"].update(
            unit=units.SECONDS), "computes an age"),
    "duration as an age": (
        lambda m: _panel(m, "Restore test duration")["fieldConfig"]["defaults"].update(
            unit=units.AGE), "is for ages"),
    "no release annotation": (
        lambda m: m["annotations"].update(list=[a for a in m["annotations"]["list"]
                                                if a["name"] != "Releases"]),
        "no 'Releases' annotation"),
    "annotation of a fixed datasource": (
        lambda m: m["annotations"]["list"][0].update(datasource={"type": "prometheus",
                                                                 "uid": "x"}),
        "is not a query of the `datasource` variable"),
}


@pytest.mark.parametrize("name", MUTATIONS)
def test_lint_catches(models, name):
    mutate, expected = MUTATIONS[name]
    broken = copy.deepcopy(models)
    mutate(broken["overview"])
    problems = lint.lint(broken)
    assert any(expected in p and p.startswith("pitwatch-overview") for p in problems), problems
    assert all(p.startswith("pitwatch-overview") for p in problems), problems


def test_shipped_boards_pass_every_rule(models):
    assert lint.lint(models) == []
    for model in models.values():
        assert lint.variable_problems(model) == lint.annotation_problems(model) == []
        for panel in model["panels"]:
            for target in panel["targets"]:
                assert lint.selector_problems(target["expr"]) == []
