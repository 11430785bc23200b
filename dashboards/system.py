"""System: the app process, the host, the volumes, and the monitoring itself."""
from __future__ import annotations

from pitwatch.dashboards import promql, slo, units
from pitwatch.dashboards.common import (
    GREEN, RED, board, runbook_link, slo_steps, stat, steps, targets, timeseries,
)
from pitwatch.dashboards.promql import or_zero, rate

MEMORY = slo_steps(slo.APP_MEMORY)
FREE = slo_steps(slo.VOLUME_FREE_WARNING, slo.VOLUME_FREE_CRITICAL)
APP_CPU = rate("pitwatch_app_process_cpu_seconds_total")
LOAD_PER_CPU = "max(pitwatch_host_load1) / max(pitwatch_host_cpus)"
# Every compose container as cAdvisor sees it (job cadvisor); outside containers the app
# process stands in, so the panels show the app either way.
COMPOSE = '{container_label_com_docker_compose_service!=""}'
AS_APP_PROCESS = '"name", "app (process)", "", ""'
CONTAINER_MEMORY = (f"sum by (name) (container_memory_working_set_bytes{COMPOSE}) or "
                    f"label_replace(max(pitwatch_app_process_resident_memory_bytes), "
                    f"{AS_APP_PROCESS})")
CONTAINER_CPU = (f"{rate('container_cpu_usage_seconds_total' + COMPOSE, 'name')} or "
                 f"label_replace({APP_CPU}, {AS_APP_PROCESS})")

dashboard = board("system", "pitwatch / System",
                  "The app process, the host, the volumes, and whether monitoring itself "
                  "works.", [
    stat("App memory", f"Resident memory of the app process. "
         f"SLO: {slo.APP_MEMORY.description}.", promql.APP_MEMORY, units.BYTES,
         thresholds=MEMORY, links=[runbook_link(slo.APP_MEMORY.alert)]),
    stat("App CPU", "CPU time of the app process per second (1 = one core busy).", APP_CPU,
         units.PERCENT),
    stat("Lowest volume free", f"Free share of the fullest volume. "
         f"{slo.VOLUME_FREE_WARNING.description}; {slo.VOLUME_FREE_CRITICAL.description}.",
         f"min({promql.VOLUME_FREE_RATIO})", units.PERCENT, thresholds=FREE,
         links=[runbook_link(slo.VOLUME_FREE_WARNING.alert)]),
    stat("Load per CPU", "1-minute load average divided by the number of CPUs.",
         LOAD_PER_CPU, units.PERCENT, thresholds=steps(GREEN, (1, RED))),
    stat("Failing collectors", "Exporter collectors whose last scrape failed.",
         or_zero("count(pitwatch_collector_success == 0)"), units.SHORT,
         thresholds=steps(GREEN, (1, RED)), links=[runbook_link("CollectorFailing")]),
    stat("Targets down", "Scrape targets Prometheus cannot reach.", or_zero("count(up == 0)"),
         units.SHORT, thresholds=steps(GREEN, (1, RED)), links=[runbook_link("TargetDown")]),
    stat("App open files", "File descriptors the app process holds.",
         "max(pitwatch_app_process_open_fds)", units.SHORT),
    stat("Host memory available", "Memory the kernel can hand out without swapping.",
         "max(pitwatch_host_memory_available_bytes)", units.BYTES),
    timeseries("App memory", f"Resident memory; dashed: {slo.APP_MEMORY.description}.",
               targets((promql.APP_MEMORY, "resident")), units.BYTES, thresholds=MEMORY,
               links=[runbook_link(slo.APP_MEMORY.alert)]),
    timeseries("App CPU", "CPU time of the app process per second (1 = one core busy).",
               targets((APP_CPU, "cpu")), units.PERCENT),
    timeseries("Volume free space", f"Free share per volume; dashed: "
               f"{slo.VOLUME_FREE_WARNING.description} and "
               f"{slo.VOLUME_FREE_CRITICAL.description}.",
               targets((promql.VOLUME_FREE_RATIO, "{{volume}}")), units.PERCENT,
               thresholds=FREE, links=[runbook_link(slo.VOLUME_FREE_WARNING.alert)]),
    timeseries("Host CPU by mode", "CPU seconds per second summed over all CPUs, by mode.",
               targets((rate("pitwatch_host_cpu_seconds_total", "mode"), "{{mode}}")),
               units.SHORT, stack=True),
    timeseries("Host memory available", "Memory the kernel can hand out without swapping.",
               targets(("max(pitwatch_host_memory_available_bytes)", "available")),
               units.BYTES),
    timeseries("Collector duration", "How long each exporter collector took in its last "
               "scrape.", targets(("max by (collector) (pitwatch_collector_duration_seconds)",
                                   "{{collector}}")), units.SECONDS),
    timeseries("Scrape targets up", "Reachable targets per scrape job.",
               targets(("sum by (job) (up)", "{{job}}")), units.SHORT),
    timeseries("Host load per CPU", "1-minute load average divided by the number of CPUs; "
               "above 1, work waits for a CPU.", targets((LOAD_PER_CPU, "load per CPU")),
               units.PERCENT, thresholds=steps(GREEN, (1, RED))),
    timeseries("Memory by container", "Working set of each container (cAdvisor): what the "
               "kernel weighs against the container's mem_limit (compose/README.md, "
               "Limits). Without containers: the app process's resident memory.",
               targets((CONTAINER_MEMORY, "{{name}}")), units.BYTES,
               links=[runbook_link(slo.APP_MEMORY.alert)]),
    timeseries("CPU by container", "CPU time of each container per second (1 = one core "
               "busy; capped by its cpus limit). Without containers: the app process.",
               targets((CONTAINER_CPU, "{{name}}")), units.PERCENT),
])
