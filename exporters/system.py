"""``system`` (psutil): the app process, the volumes of the database and backups, the host."""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterator, Mapping

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from pitwatch.exporters.base import Concern


class SystemCollector(Concern):
    name = "system"

    def __init__(self, app_pid_file: Path | None = None,
                 volumes: Mapping[str, Path] | None = None):
        super().__init__()
        self.app_pid_file = Path(app_pid_file) if app_pid_file else None
        self.volumes = dict(volumes or {})
        self._lock = threading.Lock()
        self._process: psutil.Process | None = None

    def measure(self, problems: list[str]) -> Iterator[Metric]:
        if self.app_pid_file is not None:
            yield from self._app(problems)
        yield from self._volumes(problems)
        yield from self._host()

    def _app_process(self) -> psutil.Process:
        pid = int(self.app_pid_file.read_text().strip())
        with self._lock:
            # Keep the Process object: psutil checks the pid was not reused by another process.
            if self._process is None or self._process.pid != pid or not self._process.is_running():
                self._process = psutil.Process(pid)
            return self._process

    def _app(self, problems: list[str]) -> Iterator[Metric]:
        # The app is the process in the pid file and its children: under gunicorn the
        # pid is the master and the workers, forked from it, hold the memory.
        try:
            proc = self._app_process()
            with proc.oneshot():
                rss = proc.memory_info().rss
                cpu = proc.cpu_times()
                fds = proc.num_fds()
                children = proc.children(recursive=True)
            # Workers that exited and were reaped left their time in children_*: the
            # counter does not fall when a worker is replaced.
            seconds = cpu.user + cpu.system + cpu.children_user + cpu.children_system
        except (OSError, ValueError, psutil.Error) as exc:
            problems.append(f"app process from {self.app_pid_file}: {type(exc).__name__} {exc}")
            return
        for child in children:
            try:
                with child.oneshot():
                    rss += child.memory_info().rss
                    times = child.cpu_times()
                    seconds += times.user + times.system
                    fds += child.num_fds()
            except psutil.Error:
                continue  # exited since the listing
        yield GaugeMetricFamily("pitwatch_app_process_resident_memory_bytes",
                                "Resident memory of the app process and its children (workers)",
                                value=rss)
        yield CounterMetricFamily("pitwatch_app_process_cpu_seconds",
                                  "User and system CPU seconds of the app process and its children",
                                  value=seconds)
        yield GaugeMetricFamily("pitwatch_app_process_open_fds",
                                "Open file descriptors of the app process and its children",
                                value=fds)

    def _volumes(self, problems: list[str]) -> Iterator[Metric]:
        if not self.volumes:
            return
        free = GaugeMetricFamily("pitwatch_volume_free_bytes",
                                 "Bytes available to unprivileged users on the volume", labels=["volume"])
        size = GaugeMetricFamily("pitwatch_volume_size_bytes", "Size of the volume", labels=["volume"])
        for name, path in self.volumes.items():
            try:
                usage = psutil.disk_usage(str(_existing(path)))
            except OSError as exc:
                problems.append(f"volume {name} ({path}): {exc.strerror or exc}")
                continue
            free.add_metric([name], usage.free)
            size.add_metric([name], usage.total)
        yield free
        yield size

    def _host(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("pitwatch_host_load1", "1-minute load average",
                                value=os.getloadavg()[0])
        yield GaugeMetricFamily("pitwatch_host_cpus", "Logical CPUs", value=psutil.cpu_count() or 0)
        cpu = CounterMetricFamily("pitwatch_host_cpu_seconds", "CPU seconds spent by mode, all CPUs",
                                  labels=["mode"])
        for mode, seconds in psutil.cpu_times()._asdict().items():
            cpu.add_metric([mode], seconds)
        yield cpu
        yield GaugeMetricFamily("pitwatch_host_memory_available_bytes",
                                "Memory available without swapping", value=psutil.virtual_memory().available)


def _existing(path: Path) -> Path:
    """The nearest existing folder: the volume is what counts, the file may not exist yet."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
