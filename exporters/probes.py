"""Network and host probes of the security collector; each raises on failure.

Kept apart from the collector so each probe is one small function a test can call.
Host probes that need privileges (listing the firewall rule set, asking fail2ban) raise
:class:`NeedsRoot` when refused, so a refusal is said as such and never read as "off".
"""
from __future__ import annotations

import _ssl  # ENCODING_DER, for the chain's certificates before Python 3.13
import re
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

TIMEOUT = 5.0


@dataclass(frozen=True)
class Expiry:
    """When the first certificate of a file or a presented chain expires, and which."""

    not_after: float  # unix time
    subject: str  # its common name; the whole subject when it has none


def earliest_expiry(certs: list) -> Expiry:
    """The certificate (``cryptography`` x509) that expires first: a chain is as good as
    its shortest-lived member, which may be an intermediate rather than the leaf."""
    from cryptography.x509.oid import NameOID

    if not certs:
        raise ValueError("no certificate")
    first = min(certs, key=lambda c: c.not_valid_after_utc)
    names = first.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    subject = str(names[0].value) if names else first.subject.rfc4514_string()
    return Expiry(first.not_valid_after_utc.timestamp(), subject)


def cert_file_expiry(path: Path) -> Expiry:
    """Over every certificate of a PEM file (a fullchain.pem: leaf and intermediates)."""
    from cryptography import x509  # ~14 MB: only when certificates are configured

    try:
        return earliest_expiry(x509.load_pem_x509_certificates(Path(path).read_bytes()))
    except ValueError:
        raise ValueError(f"{path}: not a PEM certificate") from None


def endpoint_expiry(url: str, timeout: float = TIMEOUT) -> Expiry:
    """The earliest expiry of the chain an endpoint presents in a TLS handshake.

    Verification is off on purpose: an expiring or self-signed certificate must still
    be measured, not turned into a failed probe.
    """
    parts = urlsplit(url if "://" in url else f"https://{url}")
    host, port = parts.hostname, parts.port or 443
    if not host:
        raise ValueError(f"{url}: no host")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with ctx.wrap_socket(sock, server_hostname=host) as tls:
            chain = presented_chain(tls)
    if not chain:
        raise ValueError(f"{url}: no certificate presented")
    from cryptography import x509

    return earliest_expiry([x509.load_der_x509_certificate(der) for der in chain])


def presented_chain(tls: ssl.SSLSocket) -> list[bytes]:
    """DER of every certificate the peer sent, leaf first.

    ``getpeercert`` gives the leaf only. Python 3.13 made ``get_unverified_chain()``
    public; 3.10 to 3.12 have the same OpenSSL call (SSL_get_peer_cert_chain) on the
    socket's ``_sslobj``. Using it costs no dependency (pyOpenSSL is not installed with
    pitwatch) and no ``openssl s_client`` subprocess (not in every image, and a second
    handshake). Should neither exist, the leaf alone is measured.
    """
    get = getattr(tls, "get_unverified_chain", None) or \
        getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
    if get is None:
        leaf = tls.getpeercert(binary_form=True)
        return [leaf] if leaf else []
    # 3.13+ returns DER bytes, the private call _ssl.Certificate objects.
    return [c if isinstance(c, bytes) else c.public_bytes(_ssl.ENCODING_DER)
            for c in get() or []]


def response_headers(url: str, timeout: float = TIMEOUT) -> set[str]:
    """Lower-case names of the headers a GET of ``url`` answers with (any status).

    Certificate verification is off: the probe reads headers only, and a proxy reached
    by an internal name or address must not turn "which headers" into "unknown". The
    certificate itself is judged by the TLS expiry probe.
    """
    req = urllib.request.Request(url, headers={"User-Agent": "pitwatch-exporter"})
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return {k.lower() for k in resp.headers.keys()}
    except urllib.error.HTTPError as exc:  # a 404 or 500 still carries the headers
        return {k.lower() for k in exc.headers.keys()}


class NeedsRoot(PermissionError):
    """The tool is installed but refused this (unprivileged) user."""


# How nft, iptables, ufw and fail2ban-client say that they were refused.
_REFUSED = re.compile(r"(?i)permission denied|operation not permitted|must be root|"
                      r"need to be root|are you root")


def _run(argv: list[str], timeout: float = TIMEOUT) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        said = (proc.stderr.strip() or proc.stdout.strip())[:200]
        name = Path(argv[0]).name
        if _REFUSED.search(said):
            raise NeedsRoot(f"{name} needs root (or CAP_NET_ADMIN): {said}")
        raise RuntimeError(f"{name} exited {proc.returncode}: {said}")
    return proc.stdout


def fail2ban_banned() -> dict[str, int]:
    """Currently banned addresses per jail, from ``fail2ban-client status``."""
    if shutil.which("fail2ban-client") is None:
        raise FileNotFoundError("fail2ban-client not found")
    out = _run(["fail2ban-client", "status"])
    match = re.search(r"Jail list:\s*(.*)", out)
    jails = [j.strip() for j in match.group(1).split(",") if j.strip()] if match else []
    banned = {}
    for jail in jails:
        detail = _run(["fail2ban-client", "status", jail])
        count = re.search(r"Currently banned:\s*(\d+)", detail)
        if count is None:
            raise ValueError(f"fail2ban jail {jail}: no 'Currently banned' line")
        banned[jail] = int(count.group(1))
    return banned


FIREWALLS = {
    # tool: (argv, does its output mean an active firewall)
    "nftables": (["nft", "list", "ruleset"], lambda out: "hook input" in out),
    "iptables": (["iptables", "-S", "INPUT"],
                 lambda out: "-P INPUT DROP" in out or "-P INPUT REJECT" in out
                 or any(line.startswith("-A INPUT") for line in out.splitlines())),
    "ufw": (["ufw", "status"], lambda out: "Status: active" in out),
}


@dataclass(frozen=True)
class FirewallState:
    active: bool | None  # None: unknown
    reason: str
    # A source that should have answered and did not (refused, broken, named tool missing):
    # the collector reports it. "auto" finding no tool at all is not one.
    problem: bool = False


def firewall_state(kind: str = "auto", path: str | None = None) -> FirewallState:
    """Whether a host firewall filters input, or why that is not known.

    ``auto`` asks every installed tool. Active as soon as one tool shows input filtering;
    inactive only when every installed tool answered and none does. A tool that was
    refused (not root) or failed makes the answer unknown, never "inactive": a false
    "no firewall" would page. With none of the tools installed the firewall may live
    elsewhere (a cloud security group, the host of a container): unknown as well.
    ``path`` replaces PATH for finding the tools.
    """
    kinds = list(FIREWALLS) if kind == "auto" else [kind]
    installed = {}
    for name in kinds:
        found = shutil.which(FIREWALLS[name][0][0], path=path)
        if found:
            installed[name] = found
    if not installed:
        if kind == "auto":
            return FirewallState(None, "none of nft, iptables, ufw is installed")
        return FirewallState(None, f"{FIREWALLS[kind][0][0]} not found", problem=True)
    failed = []
    for name, program in installed.items():
        argv, active = FIREWALLS[name]
        try:
            if active(_run([program, *argv[1:]])):
                return FirewallState(True, f"{name} filters input")
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            failed.append(str(exc))
    if failed:
        return FirewallState(None, "; ".join(failed), problem=True)
    return FirewallState(False, f"no input filtering in {', '.join(installed)}")
