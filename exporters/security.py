"""``security``: login failures from auth logs, fail2ban bans, TLS expiry, headers, firewall.

The auth-log tail and certificate files are read on each scrape (incremental and
small). A certificate file or an endpoint's chain is as good as its first certificate to
expire (often an intermediate): that one's date is exported, its name in ``subject``. TLS handshakes, the header probe, fail2ban and the firewall query run in the
background every ``probe_interval`` (fail2ban every minute); the scrape reads the
cached results.

The firewall is three-valued: active, inactive, or unknown (no tool installed, or the
exporter not allowed to ask). Only a real "inactive" exports
``pitwatch_security_firewall_active 0``, the one that pages; ``..._firewall_known 0``
says that the question could not be answered.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from pitwatch.exporters import probes
from pitwatch.exporters.base import CheckError, Concern, Periodic, every
from pitwatch.exporters.logtail import LogTail

FAIL2BAN_INTERVAL = 60.0


class SecurityCollector(Concern):
    name = "security"

    def __init__(self, auth_logs: Sequence[Path] = (), failure_pattern: str = r"(?i)failed password",
                 certificates: Sequence[Path] = (), tls_endpoints: Sequence[str] = (),
                 header_url: str | None = None, required_headers: Sequence[str] = (),
                 fail2ban: bool = False, firewall: str = "auto", probe_interval: float = 300,
                 tool_path: str | None = None):
        super().__init__()
        self.tails = {_source_names(auth_logs)[i]: LogTail(p, failure_pattern)
                      for i, p in enumerate(auth_logs)}
        self.certificates = [Path(c) for c in certificates]
        self.required_headers = [h.lower() for h in required_headers]
        self.probe_interval = probe_interval
        self._cert_lock = threading.Lock()
        self._cert_cache: dict[Path, tuple[tuple[int, int], probes.Expiry]] = {}
        self._checks: dict[str, Periodic] = {}
        for url in tls_endpoints:
            self._checks[f"tls:{url}"] = Periodic(f"tls {url}", probe_interval,
                                                  lambda u=url: probes.endpoint_expiry(u))
        if header_url and self.required_headers:  # required_headers: [] is "no probe"
            self._checks["headers"] = Periodic("headers", probe_interval,
                                               lambda: probes.response_headers(header_url))
        if fail2ban:
            self._checks["fail2ban"] = Periodic("fail2ban", FAIL2BAN_INTERVAL, probes.fail2ban_banned)
        if firewall != "off":
            # tool_path: where the firewall tools are looked up (default PATH).
            self._checks["firewall"] = Periodic("firewall", probe_interval,
                                                lambda: probes.firewall_state(firewall, tool_path))

    def checks(self) -> list[Periodic]:
        return list(self._checks.values())

    def measure(self, problems: list[str]) -> Iterator[Metric]:
        if self.tails:
            yield self._login_failures(problems)
        if self.certificates or any(k.startswith("tls:") for k in self._checks):
            yield self._tls(problems)
        if "headers" in self._checks:
            yield from self._headers(problems)
        if "fail2ban" in self._checks:
            yield from self._fail2ban(problems)
        if "firewall" in self._checks:
            yield from self._firewall(problems)

    def _cached(self, key: str, problems: list[str]):
        latest = self._checks[key].latest()
        if latest is None:
            return None
        if isinstance(latest[0], CheckError):
            problems.append(f"{self._checks[key].name}: {latest[0]}")
            return None
        return latest[0]

    def _login_failures(self, problems: list[str]) -> Metric:
        family = CounterMetricFamily("pitwatch_security_login_failures_total",
                                     "Auth-log lines matching security.auth_failure_pattern since the exporter started",
                                     labels=["source"])
        for source, tail in self.tails.items():
            try:
                tail.poll()
            except OSError as exc:
                problems.append(f"auth log {tail.path}: {exc.strerror or exc}")
            family.add_metric([source], tail.matches)
        return family

    def _tls(self, problems: list[str]) -> Metric:
        family = GaugeMetricFamily("pitwatch_security_tls_cert_not_after_timestamp_seconds",
                                   "Expiry of the first certificate to expire in a PEM file or an "
                                   "endpoint's presented chain (subject: its common name): files "
                                   f"read each scrape, endpoints handshaken {every(self.probe_interval)} "
                                   "in the background", labels=["source", "subject"])
        for path in self.certificates:
            try:
                expiry = self._cert_file(path)
                family.add_metric([str(path), expiry.subject], expiry.not_after)
            except (OSError, ValueError) as exc:
                problems.append(f"certificate {path}: {getattr(exc, 'strerror', None) or exc}")
        for key in self._checks:
            if key.startswith("tls:"):
                expiry = self._cached(key, problems)
                if expiry is not None:
                    family.add_metric([key.removeprefix("tls:"), expiry.subject], expiry.not_after)
        return family

    def _cert_file(self, path: Path) -> probes.Expiry:
        st = os.stat(path)
        stamp = (st.st_ino, st.st_mtime_ns)
        with self._cert_lock:
            hit = self._cert_cache.get(path)
        if hit and hit[0] == stamp:
            return hit[1]
        expiry = probes.cert_file_expiry(path)
        with self._cert_lock:
            self._cert_cache[path] = (stamp, expiry)
        return expiry

    def _headers(self, problems: list[str]) -> Iterator[Metric]:
        present = self._cached("headers", problems)
        if present is None:
            return  # unknown is not "missing": no samples rather than false alarms
        family = GaugeMetricFamily("pitwatch_security_http_header_present",
                                   f"1 if the app answers with this security header (probed "
                                   f"{every(self.probe_interval)})", labels=["header"])
        for header in self.required_headers:
            family.add_metric([header], 1.0 if header in present else 0.0)
        yield family

    def _fail2ban(self, problems: list[str]) -> Iterator[Metric]:
        banned = self._cached("fail2ban", problems)
        if banned is None:
            return
        family = GaugeMetricFamily("pitwatch_security_fail2ban_banned",
                                   f"Addresses fail2ban currently bans, per jail ({every(FAIL2BAN_INTERVAL)})",
                                   labels=["jail"])
        for jail, count in sorted(banned.items()):
            family.add_metric([jail], count)
        yield family

    def _firewall(self, problems: list[str]) -> Iterator[Metric]:
        state = self._cached("firewall", problems)
        if state is None:
            return
        if state.problem:
            problems.append(f"firewall: {state.reason}")
        how = f"asked {every(self.probe_interval)}"
        yield GaugeMetricFamily("pitwatch_security_firewall_known",
                                "1 if the firewall state could be read; 0 when no nft/iptables/ufw "
                                f"is installed or the exporter may not ask (needs root) ({how})",
                                value=0.0 if state.active is None else 1.0)
        if state.active is not None:  # unknown is no sample: never a false "inactive"
            yield GaugeMetricFamily("pitwatch_security_firewall_active",
                                    f"1 if nftables/iptables/ufw filters input, 0 if not ({how})",
                                    value=1.0 if state.active else 0.0)

    def details(self) -> dict[str, str]:
        check = self._checks.get("firewall")
        latest = check.latest() if check else None
        if latest is None or isinstance(latest[0], CheckError):
            return {}
        return {"firewall": latest[0].reason}


def _source_names(paths: Sequence[Path]) -> list[str]:
    """The file name as label; the full path only where two logs share a name."""
    names = [Path(p).name for p in paths]
    return [n if names.count(n) == 1 else str(p) for n, p in zip(names, paths)]
