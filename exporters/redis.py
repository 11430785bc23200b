"""``redis``: is Redis up, how long a PING takes, how much memory it uses.

Redis down is the measurement ``pitwatch_redis_up 0`` -- and the collector's success
is 0 too, since nothing else could be read.

Three commands (AUTH, PING, INFO memory) are spoken in RESP directly over a socket:
importing redis-py would cost the exporter ~8 MB of its 60 MB memory budget.
"""
from __future__ import annotations

import socket
import ssl
import time
from typing import Iterator
from urllib.parse import unquote, urlsplit

from prometheus_client.core import GaugeMetricFamily, Metric

from pitwatch.exporters.base import Concern

TIMEOUT = 0.5  # a scrape waits no longer than this for Redis


class RedisError(Exception):
    pass


class RedisConnection:
    """One short-lived connection: ``redis://[user:pass@]host:port``, ``rediss://``, ``unix://``."""

    def __init__(self, url: str, timeout: float = TIMEOUT):
        parts = urlsplit(url)
        if parts.scheme == "unix":
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(timeout)
            self.sock.connect(parts.path)
        elif parts.scheme in ("redis", "rediss"):
            self.sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379),
                                                 timeout=timeout)
            if parts.scheme == "rediss":
                self.sock = ssl.create_default_context().wrap_socket(
                    self.sock, server_hostname=parts.hostname)
        else:
            raise RedisError(f"unsupported URL scheme {parts.scheme!r}")
        self.reader = self.sock.makefile("rb")
        if parts.password is not None:
            user = unquote(parts.username) if parts.username else None
            self.command("AUTH", *([user] if user else []), unquote(parts.password))

    def command(self, *args: str) -> bytes:
        out = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(out))
        return self._reply()

    def _reply(self) -> bytes:
        line = self.reader.readline()
        if not line.endswith(b"\r\n"):
            raise RedisError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+" or kind == b":":
            return rest
        if kind == b"-":
            raise RedisError(rest.decode(errors="replace"))
        if kind == b"$":
            size = int(rest)
            return b"" if size < 0 else self.reader.read(size + 2)[:-2]
        raise RedisError(f"unexpected reply {line[:20]!r}")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class RedisCollector(Concern):
    name = "redis"

    def __init__(self, url: str):
        super().__init__()
        self.url = url

    def measure(self, problems: list[str]) -> Iterator[Metric]:
        try:
            conn = RedisConnection(self.url)
            try:
                started = time.perf_counter()
                if conn.command("PING") != b"PONG":
                    raise RedisError("PING did not answer PONG")
                took = time.perf_counter() - started
                used = _info_field(conn.command("INFO", "memory"), "used_memory")
            finally:
                conn.close()
        except (RedisError, OSError, ValueError) as exc:
            problems.append(f"redis {_redact(self.url)}: {exc}")
            yield GaugeMetricFamily("pitwatch_redis_up", "1 if Redis answered PING", value=0.0)
            return
        yield GaugeMetricFamily("pitwatch_redis_up", "1 if Redis answered PING", value=1.0)
        yield GaugeMetricFamily("pitwatch_redis_ping_duration_seconds",
                                "Round trip of one PING on this scrape", value=took)
        yield GaugeMetricFamily("pitwatch_redis_used_memory_bytes", "Redis used_memory (INFO memory)",
                                value=used)


def _info_field(info: bytes, field: str) -> float:
    for line in info.decode(errors="replace").splitlines():
        key, _, val = line.partition(":")
        if key == field:
            return float(val)
    raise ValueError(f"INFO has no {field}")


def _redact(url: str) -> str:
    """The URL without a password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"
