"""The scrape jobs a config gives Prometheus: their names and targets.

A target comes from ``monitoring.jobs`` when given, else from the rest of the config
(the app's URL, the exporter's and remediator's listen addresses, Litestream's ``addr``).
"""
from __future__ import annotations

from urllib.parse import urlsplit

import yaml

from pitwatch.core.config import JOB_ROLES, Config, ScrapeJob


def hostport(url: str) -> str:
    """host:port of a URL, the scheme's port when it names none."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def local_address(listen: str) -> str:
    # A wildcard listen address is scraped on loopback.
    host, _, port = listen.rpartition(":")
    return f"127.0.0.1:{port}" if host in ("0.0.0.0", "::", "[::]", "") else listen


def litestream_addr(cfg: Config) -> str | None:
    if not (cfg.backups and cfg.backups.litestream_config):
        return None
    try:
        addr = (yaml.safe_load(cfg.backups.litestream_config.read_text()) or {}).get("addr")
    except (OSError, yaml.YAMLError):
        return None
    return local_address(addr) if addr else None


def job_names(cfg: Config) -> dict[str, str]:
    """Role -> the job label Prometheus gives it (and the rules select on)."""
    return {role: (cfg.monitoring.jobs.get(role) or ScrapeJob()).name or role
            for role in JOB_ROLES}


def scraped_roles(cfg: Config) -> set[str]:
    """The roles Prometheus will have a target for."""
    derived = default_targets(cfg)
    return {role for role in JOB_ROLES
            if (cfg.monitoring.jobs.get(role) or ScrapeJob()).targets or derived.get(role)}


def default_targets(cfg: Config) -> dict[str, list[str]]:
    """Role -> host:port targets derived from the rest of the config (none: not scraped)."""
    mon = cfg.monitoring
    out = {"app": [hostport(cfg.platform.app_url)],
           "exporter": [local_address(cfg.exporter.listen)],
           "prometheus": [hostport(mon.prometheus_url)],
           "alertmanager": list(mon.alertmanagers)}
    if cfg.remediation:
        out["remediator"] = [local_address(cfg.remediation.listen)]
    litestream = litestream_addr(cfg)
    if litestream:
        out["litestream"] = [litestream]
    return out
