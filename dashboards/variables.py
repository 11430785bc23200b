"""The template variables every board has, and the filter every query carries.

``datasource`` picks the Prometheus; ``job`` and ``instance`` narrow every panel to
some scrape jobs and targets. Both are read from Prometheus (``label_values``), never
listed here: ``pitwatch render`` may rename the jobs, and a platform has its own
targets. "All" is ``.*``, which also matches series without the label (recording
rules without ``instance``, alerts without ``job``), so nothing disappears until a
person narrows the board.
"""
from __future__ import annotations

import re

from grafanalib.core import Template

from pitwatch.dashboards.selectors import with_matchers

DATASOURCE_NAME = "Prometheus"
# Panels follow the `datasource` variable, so a board also works against another
# Prometheus (e.g. a long-term store) picked in the drop-down.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
ALL = ".*"
# Label -> (variable label, label_values query). Instances follow the chosen jobs.
FILTERS = {"job": ("Job", "label_values(up, job)"),
           "instance": ("Instance", 'label_values(up{job=~"$job"}, instance)')}
# Written with spaces around "=~": pitwatch.blind and pitwatch.render read `job="…"`
# matchers as scrape roles (to judge and rename them); a variable is neither.
FILTER = ", ".join(f'{label} =~ "${label}"' for label in FILTERS)
_REFERENCE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def datasource_variable() -> Template:
    return Template(name="datasource", label="Data source", type="datasource",
                    query="prometheus", default=DATASOURCE_NAME)


def label_variable(label: str) -> dict:
    title, query = FILTERS[label]
    return {
        "name": label, "label": title, "type": "query", "datasource": DATASOURCE,
        "query": query, "definition": query,
        # 2: refresh when the time range changes, so a new job or target shows up.
        "refresh": 2, "sort": 1, "multi": True, "includeAll": True, "allValue": ALL,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [], "hide": 0, "regex": "",
    }


def templates() -> list:
    return [datasource_variable()] + [label_variable(label) for label in FILTERS]


def filtered(expr: str) -> str:
    """``expr`` with every selector narrowed to the chosen jobs and instances."""
    return with_matchers(expr, FILTER)


def has_filter(matchers: str, label: str) -> bool:
    """Whether a selector's matchers narrow ``label`` to its variable."""
    return re.search(rf'\b{label}\s*=~\s*"\$(?:{{{label}}}|{label}\b)"', matchers) is not None


def as_all(expr: str) -> str:
    """``expr`` as Grafana sends it with "All" chosen in every filter variable."""
    return _REFERENCE.sub(lambda m: ALL if (m.group(1) or m.group(2)) in FILTERS else m.group(0),
                          expr)
