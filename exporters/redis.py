"""``redis``: is Redis up, how long a PING takes, how much memory it uses.

Redis down is the measurement ``pitwatch_redis_up 0`` -- and the collector's success
is 0 too, since nothing else could be read.
"""
from __future__ import annotations

import time
from typing import Iterator

import redis as redis_client
from prometheus_client.core import GaugeMetricFamily, Metric

from exporters.base import Concern

TIMEOUT = 0.5  # a scrape waits no longer than this for Redis


class RedisCollector(Concern):
    name = "redis"

    def __init__(self, url: str):
        super().__init__()
        self.url = url
        # The client's connection pool is thread-safe: concurrent scrapes share it.
        self.client = redis_client.Redis.from_url(url, socket_timeout=TIMEOUT,
                                                  socket_connect_timeout=TIMEOUT)

    def measure(self, problems: list[str]) -> Iterator[Metric]:
        try:
            started = time.perf_counter()
            self.client.ping()
            took = time.perf_counter() - started
            used = self.client.info("memory")["used_memory"]
        except (redis_client.RedisError, OSError, KeyError) as exc:
            problems.append(f"redis {_redact(self.url)}: {exc}")
            yield GaugeMetricFamily("pitwatch_redis_up", "1 if Redis answered PING", value=0.0)
            return
        yield GaugeMetricFamily("pitwatch_redis_up", "1 if Redis answered PING", value=1.0)
        yield GaugeMetricFamily("pitwatch_redis_ping_duration_seconds",
                                "Round trip of one PING on this scrape", value=took)
        yield GaugeMetricFamily("pitwatch_redis_used_memory_bytes", "Redis used_memory (INFO memory)",
                                value=used)


def _redact(url: str) -> str:
    """The URL without a password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"
