"""One smoke request: a URL asked the way a user's client would, judged by its status.

Shared by the exporter's smoke probe (``pitwatch.exporters.smoke``) and the health gate
of rollback, deploy and restore (``pitwatch.remediation.operations.appcontrol``), so both
call the platform healthy on the same evidence.
"""
from __future__ import annotations

import http.client
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

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


def targets_from_config(smoke, platform) -> list[Target]:
    """The configured smoke URLs; the app's health URL when none are configured."""
    if smoke.urls is None:
        url = platform.app_url + platform.health_path
        return [Target(url, public_label(url))]
    return [Target(u.url, u.name or public_label(u.url), u.method, tuple(u.expect_status),
                   u.timeout, u.tls_verify) for u in smoke.urls]
