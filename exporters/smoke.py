"""``smoke``: availability and latency of the app from outside, without instrumenting it.

Blackbox style: each configured URL (default: the app's health URL) is requested in the
background every ``smoke.interval`` the way a user's client would; the scrape reads the
last result. An app that exports no request metrics of its own is still judged by
AppSmokeFailing and AppSmokeSlow.

A failed request is a measurement (``pitwatch_smoke_success 0``), not a collector failure:
the collector only fails when a probe itself breaks.
"""
from __future__ import annotations

import http.client
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

from prometheus_client.core import GaugeMetricFamily, Metric

from pitwatch.exporters.base import CheckError, Concern, Periodic, every

# Bodies are read (a user waits for them too) but only this much of one.
MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class Target:
    url: str
    label: str  # the `url` label: a configured name, else the URL without credentials
    method: str = "GET"
    expect_status: tuple[int, ...] = (200,)
    timeout: float = 5.0
    tls_verify: bool = True


@dataclass(frozen=True)
class Result:
    success: bool
    status: int  # 0: no HTTP answer (refused, timed out, TLS failure)
    duration: float
    finished: float
    error: str = ""


def public_label(url: str) -> str:
    """The URL without user:password, so no secret ends up in a label."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect is reported as its own status: following a 302 to a login page
    # would call a broken app "up".
    def redirect_request(self, *args, **kwargs):
        return None


def probe(target: Target) -> Result:
    """Request ``target`` once; every network outcome is a Result, never an exception."""
    ctx = ssl.create_default_context()
    if not target.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    # No proxy from the environment: the exporter asks the URL itself, as configured.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect(),
                                         urllib.request.HTTPSHandler(context=ctx))
    req = urllib.request.Request(target.url, method=target.method,
                                 headers={"User-Agent": "pitwatch-smoke"})
    started = time.perf_counter()
    status, error = 0, ""
    try:
        with opener.open(req, timeout=target.timeout) as resp:
            status = resp.status
            resp.read(MAX_BODY)
    except urllib.error.HTTPError as exc:  # 3xx (not followed), 4xx, 5xx: an answer all the same
        status = exc.code
        try:
            exc.read(MAX_BODY)
        except (OSError, http.client.HTTPException):
            pass
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        error = "timed out" if isinstance(reason, (socket.timeout, TimeoutError)) else str(reason)
    took = time.perf_counter() - started
    if status and took > target.timeout:
        # The socket timeout bounds each read, not the whole request: a slow drip past
        # the timeout is a failure as it would be for a user's client.
        error = f"answered after {took:.1f}s, over the {target.timeout:g}s timeout"
    ok = not error and status in target.expect_status
    if status and not ok and not error:
        error = f"status {status}, expected {', '.join(map(str, target.expect_status))}"
    return Result(ok, status, took, time.time(), error)


class SmokeCollector(Concern):
    name = "smoke"

    def __init__(self, targets: Sequence[Target], interval: float = 15.0):
        super().__init__()
        self.targets = list(targets)
        self.interval = interval
        labels = [t.label for t in self.targets]
        if len(set(labels)) != len(labels):
            dupe = next(label for label in labels if labels.count(label) > 1)
            raise ValueError(f"smoke: two URLs share the label {dupe!r}: give them names")
        # One thread per URL: a URL timing out never delays the others' results.
        self._checks = {t.label: Periodic(f"smoke {t.label}", interval, lambda t=t: probe(t))
                        for t in self.targets}

    def checks(self) -> list[Periodic]:
        return list(self._checks.values())

    def results(self, problems: list[str]) -> dict[str, Result]:
        out = {}
        for label, check in self._checks.items():
            latest = check.latest()
            if latest is None:
                continue  # not probed yet: absent rather than a false "down"
            if isinstance(latest[0], CheckError):
                problems.append(f"{check.name}: {latest[0]}")
                continue
            out[label] = latest[0]
        return out

    def measure(self, problems: list[str]) -> Iterator[Metric]:
        results = self.results(problems)
        if not results:
            return
        how = f"probed {every(self.interval)} in the background"
        families = {
            "success": GaugeMetricFamily(
                "pitwatch_smoke_success",
                f"1 if the URL answered with an expected status within its timeout ({how})",
                labels=["url"]),
            "status": GaugeMetricFamily(
                "pitwatch_smoke_status_code",
                f"HTTP status of the last smoke request; 0 when nothing answered ({how})",
                labels=["url"]),
            "duration": GaugeMetricFamily(
                "pitwatch_smoke_duration_seconds",
                f"Seconds the last smoke request took, body included ({how})", labels=["url"]),
            "finished": GaugeMetricFamily(
                "pitwatch_smoke_timestamp_seconds",
                f"When the last smoke request finished ({how})", labels=["url"]),
        }
        for label, r in results.items():
            families["success"].add_metric([label], 1.0 if r.success else 0.0)
            families["status"].add_metric([label], float(r.status))
            families["duration"].add_metric([label], r.duration)
            families["finished"].add_metric([label], r.finished)
        yield from families.values()

    def details(self) -> dict[str, str]:
        out = {}
        for label, check in self._checks.items():
            latest = check.latest()
            if latest is not None and not isinstance(latest[0], CheckError) and latest[0].error:
                out[label] = latest[0].error
        return out


def targets_from_config(smoke, platform) -> list[Target]:
    """The configured smoke URLs; the app's health URL when none are configured."""
    if smoke.urls is None:
        url = platform.app_url + platform.health_path
        return [Target(url, public_label(url))]
    return [Target(u.url, u.name or public_label(u.url), u.method, tuple(u.expect_status),
                   u.timeout, u.tls_verify) for u in smoke.urls]
