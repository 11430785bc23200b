"""Package data: Prometheus rules and their promtool tests, alertmanager.yml, the mail
template and the runbook (installed as ``pitwatch.alerts``; read through
:mod:`pitwatch.core.resources`)."""
