"""The small core every part may import: the config model, the market calendar, the
backups core, process helpers, shipped files and binaries. It imports nothing of
``pitwatch.exporters``, ``pitwatch.remediation``, ``pitwatch.dashboards`` or the front
door (docs/architecture.md, "Layers")."""
