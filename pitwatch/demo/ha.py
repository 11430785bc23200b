"""``pitwatch demo DIR --ha``: the demo stack with its remediation side replicated.

Two Alertmanagers in a cluster (gossip on 127.0.0.1), both called by Prometheus and
both calling both remediators (two ``webhook_configs``); two remediators sharing the
demo's Redis (db 1) for episode claims and target locks, each with its own journal.
Written next to ``pitwatch.yml`` (relative paths keep working there):

    pitwatch.remediator-1.yml   pitwatch.yml + remediation.redis_url
    pitwatch.remediator-2.yml   the same, its own listen port and state/journal-2.db

The first replicas keep the names, ports and journal of the single-node demo
(``remediator``, ``alertmanager``), so drills and ``demo status`` find them as before.
"""
from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import yaml

from pitwatch.core.config import Config

HEADER = ("# Made by `pitwatch demo --ha` from pitwatch.yml (rewritten at each start): a "
          "remediator replica sharing the demo's Redis.\n")
CLAIMS_DB = 1  # the app uses db 0 of the same Redis, as in compose/docker-compose.ha.yml


class NotReplicable(ValueError):
    """The demo config lacks what the HA stack needs (Redis, remediation, mail)."""


def claims_url(redis_url: str) -> str:
    base, _, db = redis_url.rstrip("/").rpartition("/")
    return f"{base}/{CLAIMS_DB}" if db.isdigit() else f"{redis_url.rstrip('/')}/{CLAIMS_DB}"


def replica_configs(cfg: Config, config_path: Path, second_listen: str) -> list[Path]:
    """The two remediators' config files, derived from ``pitwatch.yml``."""
    raw = yaml.safe_load(config_path.read_text())
    paths = []
    for i, (listen, journal) in enumerate(
            [(cfg.remediation.listen, raw["remediation"]["journal"]),
             (second_listen, "state/journal-2.db")], start=1):
        doc = copy.deepcopy(raw)
        doc["remediation"].update(listen=listen, journal=journal,
                                  redis_url=claims_url(cfg.platform.redis_url))
        path = config_path.with_name(f"pitwatch.remediator-{i}.yml")
        path.write_text(HEADER + yaml.safe_dump(doc, sort_keys=False))
        paths.append(path)
    return paths


def replicate(cfg: Config, config_path: Path, specs: list, ports: dict[str, int]) -> list:
    """``specs`` of the single-node demo -> the HA stack's specs (same order, replicas added).

    ``ports`` must hold ``alertmanager``, ``alertmanager_cluster``, ``alertmanager_2``,
    ``alertmanager_2_cluster`` and ``remediator_2``; the single-node specs have already
    rendered ``stack/prometheus/prometheus.yml`` and ``stack/alertmanager/alertmanager.yml``,
    which are rewritten
    here for two of each.
    """
    if not (cfg.platform.redis_url and cfg.remediation and cfg.mail):
        raise NotReplicable("--ha needs platform.redis_url, a remediation and a mail section")
    root = config_path.parent
    listen_2 = f"127.0.0.1:{ports['remediator_2']}"
    first, second = replica_configs(cfg, config_path, listen_2)
    am = [f"127.0.0.1:{ports['alertmanager']}", f"127.0.0.1:{ports['alertmanager_2']}"]
    gossip = [f"127.0.0.1:{ports['alertmanager_cluster']}",
              f"127.0.0.1:{ports['alertmanager_2_cluster']}"]
    remediators = [cfg.remediation.listen, listen_2]
    _two_webhooks(root / "stack" / "alertmanager" / "alertmanager.yml",
                  [f"http://{r}/alerts" for r in remediators])
    _two_targets(root / "stack" / "prometheus" / "prometheus.yml", am, remediators)

    out = []
    for spec in specs:
        if spec.name == "remediator":
            out.append(replace(spec, argv=_with_config(spec.argv, first)))
            url = f"http://{listen_2}"
            out.append(replace(spec, name="remediator-2", argv=_with_config(spec.argv, second),
                               url=url + "/", ready_url=url + "/healthz"))
        elif spec.name == "alertmanager":
            argv = [a for a in spec.argv if not a.startswith("--cluster.listen-address")]
            for i in range(2):
                url = f"http://{am[i]}"
                out.append(replace(spec, name="alertmanager" + ("" if i == 0 else "-2"), argv=[
                    *(_swap(argv, am[0], am[i]) if i else argv),
                    f"--cluster.listen-address={gossip[i]}", f"--cluster.peer={gossip[1 - i]}",
                ], url=url, ready_url=url + "/-/ready"))
        else:
            out.append(spec)
    return out


def _with_config(argv: list[str], path: Path) -> list[str]:
    argv = list(argv)
    argv[argv.index("--config") + 1] = str(path)
    return argv


def _swap(argv: list[str], old_addr: str, new_addr: str) -> list[str]:
    """The first Alertmanager's argv for the second: its address and its storage."""
    out = []
    for a in argv:
        a = a.replace(old_addr, new_addr)
        if a.startswith("--storage.path="):
            a += "-2"
        out.append(a)
    return out


def _two_webhooks(path: Path, urls: list[str]) -> None:
    config = yaml.safe_load(path.read_text())
    for receiver in config["receivers"]:
        hooks = receiver.get("webhook_configs")
        if hooks:
            receiver["webhook_configs"] = [{**copy.deepcopy(hooks[0]), "url": u} for u in urls]
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _two_targets(path: Path, alertmanagers: list[str], remediators: list[str]) -> None:
    config = yaml.safe_load(path.read_text())
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": alertmanagers}]}]}
    for job in config["scrape_configs"]:
        targets = {"alertmanager": alertmanagers, "remediator": remediators}.get(job["job_name"])
        if targets:
            job["static_configs"] = [{"targets": targets}]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
