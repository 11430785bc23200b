"""``pitwatch demo DIR``: the demo platform and its watchers as child processes.

The stack is a list of :class:`Component` specs, started in order, each waited for
until ready. Adding Prometheus, Alertmanager, Litestream, the remediator or an SMTP
sink means adding a spec to :func:`components`. What runs is written to
``DIR/run/stack.json`` (name, pid, url) for drills and tests.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pitwatch import render
from pitwatch.core import binaries
from pitwatch.core import config as config_mod
from pitwatch.core.config import Config
from pitwatch.demo import lifecycle, platform
from pitwatch.scrape import hostport, litestream_addr
from pitwatch.core.procs import Child, free_port, wait_http, wait_tcp

PITWATCH = [sys.executable, "-m", "pitwatch"]


@dataclass
class Component:
    name: str
    argv: list[str]
    url: str = ""  # shown to the person running the demo
    ready_url: str | None = None  # polled until 2xx
    ready_tcp: str | None = None  # HOST:PORT accepting connections; neither: alive after a moment
    ready_timeout: float = 30.0
    env: dict[str, str] = field(default_factory=dict)
    available: bool = True  # False: listed as skipped (e.g. a command not installed)
    why_unavailable: str = ""
    pid_file: Path | None = None  # written once started, for the platform's stop/start commands


def _has_command(module: str) -> bool:
    return importlib.util.find_spec(f"pitwatch.commands.{module}") is not None


SNAPSHOT_EVERY = "15m"  # well inside the 1 h RPO of the backup-age alert

# Debian binaries the stack runs, and the package that brings each.
DEBIAN = {"prometheus": "prometheus", "prometheus-alertmanager": "prometheus-alertmanager",
          "redis-server": "redis-server"}


def _binary(name: str, override: str | None = None) -> tuple[str, bool, str]:
    """(path or name, found, one line saying how to install it)."""
    try:
        return binaries.find(name, override), True, ""
    except binaries.BinaryNotFound as exc:
        how = (f"`{name}` not found: install it with `sudo apt-get install {DEBIAN[name]}`"
               if name in DEBIAN else str(exc))
        return name, False, how


HA_PORTS = ("alertmanager_2", "alertmanager_2_cluster", "remediator_2")


def stack_ports(root: Path) -> dict[str, int]:
    """Ports of the monitoring side (not in pitwatch.yml), kept in stack/ports.json."""
    path = root / "stack" / "ports.json"
    try:
        ports = json.loads(path.read_text())
    except (OSError, ValueError):
        ports = {}
    for name in ("prometheus", "alertmanager", "alertmanager_cluster", *HA_PORTS):
        ports.setdefault(name, free_port())
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(ports, indent=2) + "\n")
    return ports


def components(cfg: Config, config_path: Path, rate: float = 5.0,
               ha: bool = False) -> list[Component]:
    """The stack's specs; ``ha``: two clustered Alertmanagers, two remediators (demo.ha)."""
    specs = _components(cfg, config_path, rate)
    if ha:
        from pitwatch.demo import ha as ha_stack

        specs = ha_stack.replicate(cfg, config_path, specs, stack_ports(config_path.parent))
    return specs


def _components(cfg: Config, config_path: Path, rate: float) -> list[Component]:
    root = config_path.parent
    app = cfg.platform.app_url
    exporter = f"http://{cfg.exporter.listen}"
    cfg_arg = ["--config", str(config_path)]
    ports = stack_ports(root)
    prometheus_url = f"http://127.0.0.1:{ports['prometheus']}"
    alertmanager_url = f"http://127.0.0.1:{ports['alertmanager']}"
    specs = []
    if cfg.mail:
        specs.append(Component(
            "mailsink", PITWATCH + ["mailsink", str(root / "mail"), "--listen", cfg.mail.smarthost],
            url=f"smtp://{cfg.mail.smarthost} -> mail/", ready_tcp=cfg.mail.smarthost))
    if cfg.platform.redis_url:
        host_port = hostport(cfg.platform.redis_url)
        host, _, port = host_port.rpartition(":")
        redis, found, how = _binary("redis-server")
        specs.append(Component(
            "redis", [redis, "--bind", host, "--port", port, "--save", "", "--appendonly", "no",
                      "--daemonize", "no"],
            url=cfg.platform.redis_url, ready_tcp=host_port, available=found, why_unavailable=how))
    if cfg.backups and cfg.backups.litestream_config:
        addr = litestream_addr(cfg)
        litestream, found, how = _binary("litestream", cfg.backups.litestream_binary)
        specs.append(Component(
            "litestream", [litestream, "replicate", "-config", str(cfg.backups.litestream_config)],
            url=f"http://{addr}/metrics" if addr else "", ready_url=f"http://{addr}/metrics" if addr else None,
            available=found, why_unavailable=how, pid_file=lifecycle.litestream_pid_file(cfg)))
    specs += [
        Component("app", PITWATCH + ["demo", "app", *cfg_arg], url=app,
                  ready_url=app + cfg.platform.health_path),
        Component("exporter", PITWATCH + ["exporter", *cfg_arg], url=exporter + "/metrics",
                  ready_url=exporter + "/metrics"),
    ]
    if cfg.remediation:
        remediator = f"http://{cfg.remediation.listen}"
        specs.append(Component("remediator", PITWATCH + ["remediator", *cfg_arg],
                               url=remediator + "/", ready_url=remediator + "/healthz"))
    if cfg.backups:
        specs.append(Component("snapshots", PITWATCH + ["backup", "schedule", *cfg_arg, "--every",
                                                       SNAPSHOT_EVERY],
                               url=f"every {SNAPSHOT_EVERY} -> {cfg.backups.snapshots_dir.name}/"))
    specs += _monitoring(cfg, root, ports, prometheus_url, alertmanager_url)
    specs.append(Component("traffic", PITWATCH + ["demo", "traffic", *cfg_arg, "--rate", str(rate)],
                           url=f"{rate:g} req/s -> {app}"))
    return specs


def _monitoring(cfg: Config, root: Path, ports: dict[str, int], prometheus_url: str,
                alertmanager_url: str) -> list[Component]:
    """Prometheus and Alertmanager running the shipped rules, routes and timings."""
    # The same renderer as a real install, with this machine's monitoring addresses.
    local = cfg.model_copy(update={"monitoring": cfg.monitoring.model_copy(update={
        "alertmanagers": [hostport(alertmanager_url)], "prometheus_url": prometheus_url})})
    render.write(local, root / "stack")
    prom_yml = root / "stack" / "prometheus" / "prometheus.yml"
    prometheus, prom_found, prom_how = _binary("prometheus")
    specs = [Component(
        "prometheus", [prometheus, f"--config.file={prom_yml}",
                       f"--storage.tsdb.path={root / 'prometheus'}",
                       f"--web.listen-address={hostport(prometheus_url)}",
                       f"--web.external-url={prometheus_url}",
                       "--storage.tsdb.retention.time=7d"],
        url=prometheus_url, ready_url=prometheus_url + "/-/ready", available=prom_found,
        why_unavailable=prom_how)]
    if cfg.mail and cfg.remediation:
        am_yml = root / "stack" / "alertmanager" / "alertmanager.yml"
        am, am_found, am_how = _binary("prometheus-alertmanager")
        specs.insert(0, Component(
            "alertmanager", [am, f"--config.file={am_yml}",
                             f"--storage.path={root / 'alertmanager'}",
                             f"--web.listen-address={hostport(alertmanager_url)}",
                             f"--web.external-url={alertmanager_url}",
                             "--cluster.listen-address="],
            url=alertmanager_url, ready_url=alertmanager_url + "/-/ready", available=am_found,
            why_unavailable=am_how))
    return specs


def _child_path() -> str:
    # The venv's bin (litestream, pitwatch) first, as when it is activated.
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


class Stack:
    def __init__(self, root: Path, cfg: Config, specs: list[Component],
                 echo: Callable[[str], None] = print):
        self.root, self.cfg, self.specs, self.echo = root, cfg, specs, echo
        self.children: dict[str, Child] = {}

    def start(self) -> None:
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        for spec in self.specs:
            if not spec.available:
                self.echo(f"skipping {spec.name}: {spec.why_unavailable}")
                continue
            self._start_child(spec)
        self._write_state()

    def _start_child(self, spec: Component) -> None:
        child = Child(spec.name, spec.argv, log=self.root / "logs" / f"{spec.name}.log",
                      env={"PATH": _child_path(), **spec.env}, cwd=self.root)
        self.children[spec.name] = child
        if spec.pid_file:
            lifecycle.write_pid(spec.pid_file, child.pid)
        if spec.ready_url:
            wait_http(spec.ready_url, spec.ready_timeout, proc=child)
        elif spec.ready_tcp:
            wait_tcp(spec.ready_tcp, spec.ready_timeout, proc=child)
        else:
            time.sleep(1.0)
            if child.poll() is not None:
                raise RuntimeError(f"{spec.name} exited with {child.poll()}{child.tail()}")

    def _write_state(self) -> None:
        state = [{"name": s.name, "pid": self.children[s.name].pid if s.name in self.children
                  else None, "url": s.url, "log": f"logs/{s.name}.log",
                  "running": s.name in self.children} for s in self.specs]
        path = self.root / "run" / "stack.json"
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"components": state}, indent=2) + "\n")
        tmp.replace(path)

    def table(self) -> str:
        rows = [("COMPONENT", "PID", "URL / WHAT", "LOG")]
        for s in self.specs:
            child = self.children.get(s.name)
            if child:
                rows.append((s.name, str(child.pid), s.url, f"logs/{s.name}.log"))
            else:
                rows.append((s.name, "-", f"skipped: {s.why_unavailable}", ""))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

    def watch(self, seconds: float | None, restart_grace: float = 30.0) -> None:
        end = None if seconds is None else time.monotonic() + seconds
        reported: set[str] = set()
        app_exited_at: float | None = None
        while end is None or time.monotonic() < end:
            time.sleep(0.5)
            for name, child in self.children.items():
                if child.poll() is None or name in reported:
                    continue
                if name == "app":
                    # A restart (restart_command) replaces the app process: not a failure.
                    replacement = lifecycle.running_pid(self.cfg)
                    if replacement:
                        self.echo(f"app pid {child.pid} was replaced by pid {replacement} (restart)")
                    elif app_exited_at is None:
                        app_exited_at = time.monotonic()
                        continue
                    elif time.monotonic() - app_exited_at < restart_grace:
                        continue
                    else:
                        self.echo(f"app exited with {child.poll()} and was not restarted; "
                                  "see logs/app.log")
                elif name == "litestream" and lifecycle.litestream_pid(self.cfg):
                    # A restore's stop/start commands replaced it, as a service manager would.
                    self.echo(f"litestream pid {child.pid} was replaced by pid "
                              f"{lifecycle.litestream_pid(self.cfg)} (stopped and started with the app)")
                else:
                    self.echo(f"{name} exited with {child.poll()}; see logs/{name}.log")
                reported.add(name)

    def stop_component(self, name: str) -> None:
        if name in self.children:
            self.children[name].stop()
        if name == "litestream":
            lifecycle.stop_litestream(self.cfg)  # a restore may have replaced our child

    def stop(self) -> None:
        for name in reversed(list(self.children)):
            self.children[name].stop()
        # The app and Litestream may have been restarted outside our children.
        lifecycle.stop(self.cfg)
        lifecycle.stop_litestream(self.cfg)


class Running:
    """A stack started by another `pitwatch demo`, known from its run/stack.json."""

    def __init__(self, pids: dict[str, int], cfg: Config | None = None):
        self.pids, self.cfg = pids, cfg

    def stop_component(self, name: str) -> None:
        try:
            os.killpg(self.pids[name], signal.SIGTERM)
        except (KeyError, ProcessLookupError, PermissionError):
            pass
        if name == "litestream" and self.cfg is not None:
            lifecycle.stop_litestream(self.cfg)  # a restore may have replaced it


def running(root: Path, cfg: Config | None = None) -> Running | None:
    """The stack another process runs in ``root``, if its Prometheus is alive."""
    try:
        state = json.loads((root / "run" / "stack.json").read_text())
    except (OSError, ValueError):
        return None
    pids = {c["name"]: c["pid"] for c in state.get("components", []) if c.get("pid")}

    def alive(pid: int | None) -> bool:
        try:
            os.kill(pid, 0)
            return True
        except (TypeError, ProcessLookupError, PermissionError):
            return False

    # Not the app: a restart gives it a new pid that stack.json does not know.
    return Running(pids, cfg) if alive(pids.get("prometheus")) else None


def status(root: Path, cfg: Config) -> list[str]:
    """A table of the components in ``root``'s run/stack.json: pid, up/down, URL."""
    try:
        state = json.loads((root / "run" / "stack.json").read_text())["components"]
    except (OSError, ValueError, KeyError):
        return []
    rows = [("COMPONENT", "PID", "STATE", "URL / WHAT")]
    for c in state:
        pid = c.get("pid")
        if not pid:
            rows.append((c["name"], "-", "skipped", c.get("url", "")))
            continue
        try:
            os.kill(pid, 0)
            alive = True
        except (ProcessLookupError, PermissionError):
            alive = False
        replaced = {"app": lifecycle.running_pid, "litestream": lifecycle.litestream_pid}.get(c["name"])
        if replaced and not alive and replaced(cfg):
            pid, alive = replaced(cfg), True  # restarted by the platform's commands: a new pid
        rows.append((c["name"], str(pid), "up" if alive else "down", c.get("url", "")))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def run(directory: str | Path, seconds: float | None = None, rate: float = 5.0,
        echo: Callable[[str], None] = print, ha: bool = False) -> int:
    root = Path(directory).resolve()
    config_path = platform.init(root, echo=echo)
    cfg = config_mod.load(config_path)
    if lifecycle.running_pid(cfg):
        echo(f"a demo app is already running (pid {lifecycle.running_pid(cfg)}); stop it with "
             f"`pitwatch demo stop-app --config {config_path}`")
        return 1
    try:
        specs = components(cfg, config_path, rate=rate, ha=ha)
    except ValueError as exc:  # demo.ha.NotReplicable
        echo(f"cannot run the HA demo: {exc}")
        return 2
    stack = Stack(root, cfg, specs, echo=echo)

    def terminate(signum, frame):
        raise KeyboardInterrupt

    # Explicit for SIGINT too: a shell script's background job inherits it ignored.
    previous = {sig: signal.signal(sig, terminate) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        stack.start()
        echo(stack.table())
        echo("running " + (f"for {seconds:g}s" if seconds else "until Ctrl-C"))
        stack.watch(seconds)
    except KeyboardInterrupt:
        echo("stopping")
    except (RuntimeError, TimeoutError) as exc:
        echo(f"demo failed to start: {exc}")
        return 1
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    echo("all components stopped")
    return 0
