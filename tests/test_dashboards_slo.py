"""Dashboard thresholds (dashboards/slo.py) and alert thresholds (alerts/rules) agree."""
from __future__ import annotations

import ast
import math
import operator
import re
from pathlib import Path

import pytest
import yaml

from pitwatch.dashboards import build, slo

RULES = Path(__file__).resolve().parent.parent / "alerts" / "rules"
# A comparison against a constant: "> 0.2", "< 21 * 86400", "> 64 * 1024 * 1024".
_COMPARISON = re.compile(r"(?<![=!<>])(>=|<=|>|<)\s*(?:bool\s+)?([0-9][0-9eE.+*/\s()-]*)")
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


def comparisons(expr: str) -> list[tuple[str, float]]:
    out = []
    for op, rhs in _COMPARISON.findall(expr):
        rhs = rhs.strip()
        # Trailing ")" belong to the enclosing expression: drop unbalanced ones.
        while rhs.count(")") > rhs.count("("):
            rhs = rhs[:rhs.rindex(")")].strip()
        try:
            out.append((op, arithmetic(rhs)))
        except (ValueError, SyntaxError):
            continue
    return out


def alert_rules() -> list[dict]:
    return [rule for path in sorted(RULES.glob("*.yml"))
            for group in (yaml.safe_load(path.read_text()) or {}).get("groups", [])
            for rule in group.get("rules", []) if "alert" in rule]


@pytest.fixture(scope="module")
def rules() -> list[dict]:
    found = alert_rules()
    assert found, "alerts/rules/ has no alert rule to compare the dashboard thresholds with"
    return found


def test_comparison_parser():
    assert comparisons("time() - x > 3600") == [(">", 3600.0)]
    assert comparisons("x - time() < 21 * 86400") == [("<", 21 * 86400.0)]
    assert comparisons("(a > 64 * 1024 * 1024) and (delta(a[15m]) > 0)") == \
        [(">", 64 * 1024 ** 2), (">", 0.0)]
    assert comparisons("histogram_quantile(0.95, sum by (le) (rate(x[5m]))) > 0.2") == \
        [(">", 0.2)]
    assert comparisons("x > bool 1e9") == [(">", 1e9)]
    assert comparisons("x == 0") == []


@pytest.mark.parametrize("target", slo.ALL, ids=lambda s: f"{s.alert}-{s.severity}")
def test_alert_rule_uses_the_dashboard_threshold(rules, target):
    matching = [r for r in rules if r["alert"] == target.alert
                and r.get("labels", {}).get("severity") == target.severity]
    assert matching, f"no alert {target.alert} with severity {target.severity} in alerts/rules"
    (rule,) = matching
    assert target.metric in rule["expr"], rule["expr"]
    wanted = ">" if target.bad_when == "above" else "<"
    found = comparisons(rule["expr"])
    assert any(op.startswith(wanted) and math.isclose(value, target.value, rel_tol=1e-9)
               for op, value in found), \
        f"{target.alert}: dashboards/slo.py says {wanted} {target.value}, the rule has {found}"


def test_every_slo_is_drawn_on_a_board():
    """Each SLO value is a threshold step of a panel that queries its metric."""
    models = build.models()
    for target in slo.ALL:
        panels = [p for m in models.values() for p in m["panels"]
                  if any(target.metric in t["expr"] for t in p["targets"])]
        values = {s["value"] for p in panels
                  for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]}
        assert target.value in values, f"{target.alert} {target.severity}: {target.value}"
