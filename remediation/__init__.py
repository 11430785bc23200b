"""Automatic remediation: the Alertmanager webhook receiver and the actions it runs.

Modules, in the order a notification meets them:

    alerts     Alertmanager webhook v4 body -> Notification (400 naming the field)
    receiver   the WSGI app: auth, size limit, routes (/alerts /healthz /metrics /actions)
    engine     journal-first acceptance (group commit), claims, the bounded worker pool
    policy     rule matching and guards: duplicate, dry_run, market_hours, cooldown, max_runs
    journal    SQLite WAL: notifications, decisions, runs (schema in its docstring)
    claims     episode claims + per-target locks: flock locally, Redis SET NX PX + fencing
    actions    action name -> argv (built-ins run `python -m pitwatch <action> --config CFG`)
    runner     argv only, sanitised environment, PITWATCH_ALERT_FILE, group timeout
    metrics    pitwatch_remediation_* (docs/metrics.md)
    replay     what the policy would decide for a saved notification, acting on nothing

operations/ (what the receiver runs as commands, never imports):

    releases    rollback / deploy: release folders + `current` link, or the compose .env tag
    restore     restore with quarantine and an atomic swap; RTO / RPO
    fencing     a stale run (its lock expired) cannot change what a newer run took
    appcontrol  restart / stop / start of the trading app and waiting for its /health

Imports only the core, pitwatch.core (docs/architecture.md, "Layers").
"""
