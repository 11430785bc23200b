"""From a :class:`pitwatch.core.config.Config` to the collectors and their registry.

``build_registry(cfg)`` is the one place that decides which collectors a platform
gets; the exporter process, ``pitwatch check`` and the tests all use it.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, ProcessCollector

from pitwatch.core import backups
from pitwatch.exporters.activity import ActivityCollector
from pitwatch.exporters.backup import BackupCollector
from pitwatch.exporters.base import Combined, Concern, Periodic
from pitwatch.exporters.database import DatabaseCollector
from pitwatch.exporters.deploys import DeploysCollector
from pitwatch.exporters.market import MarketCollector
from pitwatch.exporters.redis import RedisCollector
from pitwatch.exporters.security import SecurityCollector
from pitwatch.exporters.smoke import SmokeCollector, targets_from_config
from pitwatch.exporters.system import SystemCollector
from pitwatch.exporters.trading import TradingCollector
from pitwatch.core.config import Config


class ExporterRegistry(CollectorRegistry):
    """A registry holding the pitwatch collectors, plus control of their background checks."""

    def __init__(self, concerns: list[Concern], process_metrics: bool = True):
        super().__init__()
        self.concerns = concerns
        self.register(Combined(concerns))
        if process_metrics:  # the exporter's own process_* metrics (memory, fds)
            ProcessCollector(registry=self)

    def concern(self, name: str) -> Concern:
        return next(c for c in self.concerns if c.name == name)

    def checks(self) -> list[Periodic]:
        return [check for concern in self.concerns for check in concern.checks()]

    def start(self) -> None:
        """Start every background check on its own schedule."""
        for check in self.checks():
            check.start()

    def stop(self) -> None:
        for check in self.checks():
            check.stop()

    def details(self) -> dict[str, str]:
        """Background-check details of every concern, keyed ``concern:check``."""
        return {f"{c.name}:{k}": v for c in self.concerns for k, v in c.details().items()}

    def run_checks_once(self) -> None:
        """Run every background check now, in this thread (``pitwatch check``, tests)."""
        for check in self.checks():
            check.run_once()


def build_concerns(cfg: Config) -> list[Concern]:
    plat, sec = cfg.platform, cfg.security
    concerns: list[Concern] = [
        MarketCollector(),
        TradingCollector(plat.database, cfg.trading_queries, cfg.exporter.trading_query_interval,
                         cfg.exporter.trading_query_timeout),
        DatabaseCollector(plat.database, cfg.exporter.quick_check_interval,
                          cfg.exporter.integrity_check_interval),
    ]
    volumes = {"database": plat.database.parent}
    if cfg.backups is not None:
        concerns.append(BackupCollector(plat.database, cfg.backups.snapshots_dir,
                                        cfg.backups.litestream_config,
                                        cfg.backups.restore_test_interval,
                                        cfg.backups.litestream_binary,
                                        backups.scratch_dir(cfg.backups)))
        volumes["backups"] = cfg.backups.snapshots_dir
    concerns.append(SecurityCollector(
        auth_logs=sec.auth_logs, failure_pattern=sec.auth_failure_pattern,
        certificates=sec.certificates, tls_endpoints=sec.tls_endpoints,
        header_url=sec.header_probe_url or plat.app_url, required_headers=sec.required_headers,
        fail2ban=sec.fail2ban, firewall=sec.firewall, probe_interval=sec.probe_interval))
    smoke_targets = targets_from_config(cfg.smoke, plat)
    if smoke_targets:  # `smoke: {urls: []}` turns the probe off
        concerns.append(SmokeCollector(smoke_targets, cfg.smoke.interval))
    max_trade_age = cfg.trading.expected_max_trade_age()
    if max_trade_age is not None:  # activity none: no expectation, no metric
        concerns.append(ActivityCollector(cfg.trading.activity, max_trade_age))
    concerns.append(SystemCollector(plat.app_pid_file, volumes))
    if plat.redis_url:
        concerns.append(RedisCollector(plat.redis_url))
    # Where `pitwatch deploy` records (pitwatch.remediation.operations.deploys.store_for).
    if cfg.remediation is not None:
        concerns.append(DeploysCollector(journal=cfg.remediation.journal))
    elif plat.deploy == "compose" or plat.releases_dir is not None:
        folder = plat.compose_env_file.parent if plat.deploy == "compose" else plat.releases_dir
        concerns.append(DeploysCollector(jsonl=folder / "deploys.jsonl"))
    return concerns


def build_registry(cfg: Config, process_metrics: bool = True) -> ExporterRegistry:
    """The registry for ``cfg``; call ``.start()`` for the background checks."""
    return ExporterRegistry(build_concerns(cfg), process_metrics=process_metrics)
