"""The shipped Prometheus and Alertmanager configs, rendered for one machine.

The demo, the drills and the tests run the very files the compose stack runs
(`compose/prometheus.yml`, `alerts/alertmanager.yml`, `alerts/rules/`): only the
addresses and secret paths are rewritten here, never a timing or a route.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from pitwatch.core import resources

PROMETHEUS_YML = resources.compose("prometheus.yml")
ALERTMANAGER_YML = resources.alerts("alertmanager.yml")
RULES_DIR = resources.alerts("rules")


def prometheus(targets: dict[str, str], alertmanagers: list[str]) -> dict:
    """compose/prometheus.yml with local targets: ``targets`` maps job -> host:port.

    Jobs without a local target are dropped (their absence alert still fires, as it
    should when a component is not running).
    """
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    config["rule_files"] = [str(RULES_DIR / "*.yml")]
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": alertmanagers}]}]}
    config.pop("remote_write", None)
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] in targets:
            job = {k: v for k, v in job.items() if not k.endswith("_sd_configs")}
            job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
            jobs.append(job)
    config["scrape_configs"] = jobs
    return config


def alertmanager(smarthost: str, mail_to: str, webhook_url: str, token_file: Path,
                 mail_from: str | None = None) -> dict:
    """alerts/alertmanager.yml with this machine's mail server, remediator and token."""
    config = yaml.safe_load(ALERTMANAGER_YML.read_text())
    config["global"]["smtp_smarthost"] = smarthost
    if mail_from:
        config["global"]["smtp_from"] = mail_from
    config["templates"] = [str(ALERTMANAGER_YML.parent / t) for t in config["templates"]]
    for receiver in config["receivers"]:
        for mail in receiver.get("email_configs", []):
            mail["to"] = mail_to
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url
            hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    return config


def write(config: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
