"""SLOs and error budgets: how much of each 30-day budget is left, and how fast it burns.

Everything here reads the recording rules of ``alerts/rules/slo.yml`` (generated from
:mod:`pitwatch.core.slo`); the burn-rate thresholds are its alerts' factors.
"""
from __future__ import annotations

from pitwatch.core.slo import BURNS, PERIOD
from pitwatch.dashboards import promql, slo, units
from pitwatch.dashboards.common import (
    GREEN, ORANGE, RED, AlertSteps, board, board_link, stat, steps, targets, timeseries,
)

# Below 0 the budget is overspent; under a quarter left, releases deserve care.
BUDGET = steps(RED, (0, ORANGE), (0.25, GREEN))


def _burn_steps(objective, long_window: str | None = None) -> AlertSteps:
    """Burn rate 1 spends the budget in exactly the period; the alerts' factors page or warn."""
    factors = [b for b in BURNS if long_window in (None, b.long)]
    levels = [(1, ORANGE)] + [(b.factor, RED if b.severity == "critical" else ORANGE)
                              for b in factors if b.factor != 1]
    return AlertSteps(steps(GREEN, *levels), (objective.alert,))


def _burn_over(objective, window: str) -> str:
    # Divided by the budget as a number, as the alerts do: slo:objective:ratio has no
    # job label, so a board narrowed to a job would lose it.
    return f"{promql.sli_error(objective.slo, window)} / {objective.budget:.10g}"


def _panels(o) -> list:
    name = o.slo.capitalize()
    return [
        stat(f"{name}: SLI over {PERIOD}", f"Share of good requests over the budget period "
             f"({PERIOD}, or as far back as Prometheus has data). Objective: {o.description}.",
             targets((f"1 - {promql.sli_error(o.slo, PERIOD)}", "{{job}}")), units.PERCENT,
             thresholds=steps(RED, (o.objective, GREEN)), graph=False, w=8),
        stat(f"{name}: budget remaining", f"Share of the {PERIOD} error budget not spent yet "
             f"(1 - bad share / (1 - objective)); below 0 the objective is missed.",
             targets((promql.budget_remaining(o.slo), "{{job}}")), units.PERCENT,
             thresholds=BUDGET, w=8),
        stat(f"{name}: burn rate (1 h)", f"How fast the last hour spent the budget: 1 spends it "
             f"in exactly {PERIOD}; {o.alert} pages when the last hour and the last 5 minutes "
             f"both burn faster than the red line.",
             targets((promql.burn_rate(o.slo), "{{job}}")), units.MULTIPLE,
             thresholds=_burn_steps(o, "1h"), w=8),
        timeseries(f"{name}: burn rate by alert window", f"Burn rate over each long window "
                   f"{o.alert} watches; dashed: its factors (red pages, orange mails). Each "
                   f"alert also needs its short window to burn as fast.",
                   targets(*((_burn_over(o, b.long), f"{b.long} {{{{job}}}}") for b in BURNS)),
                   units.MULTIPLE, thresholds=_burn_steps(o)),
        timeseries(f"{name}: budget remaining", f"Share of the {PERIOD} error budget left over "
                   f"time; a steep fall is an incident, a slow one a release to look at.",
                   targets((promql.budget_remaining(o.slo), "{{job}}")), units.PERCENT,
                   thresholds=BUDGET, min_zero=False,
                   links=[board_link("trading", "Trading")]),
    ]


dashboard = board("budgets", "pitwatch / SLOs and error budgets",
                  "The request SLOs of the trading app: what is left of each error budget "
                  "and how fast it burns, against the burn-rate alerts' factors.",
                  [panel for objective in slo.OBJECTIVES for panel in _panels(objective)])
