"""Grafana dashboards as code (grafanalib) -> compose/grafana/dashboards/*.json.

One module per board (overview, trading, database, backups, security, system,
remediation), each exposing ``dashboard``. Shared pieces: ``slo`` (thresholds, the one
place), ``promql`` (expressions shown on more than one board), ``units``, ``common``
(datasource variable, panel constructors, links, layout). ``build`` renders the JSON,
``lint`` checks it, ``queries`` runs it against Prometheus and ``snapshot`` draws it.
"""
