"""Network and host probes of the security collector; each raises on failure.

Kept apart from the collector so each probe is one small function a test can call.
"""
from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

TIMEOUT = 5.0


def cert_not_after(pem: bytes) -> float:
    """Not-after (unix time) of the first certificate of a PEM file (the leaf of a chain)."""
    from cryptography import x509  # ~14 MB: only when certificates are configured

    cert = x509.load_pem_x509_certificate(pem)
    return cert.not_valid_after_utc.timestamp()


def cert_file_not_after(path: Path) -> float:
    try:
        return cert_not_after(Path(path).read_bytes())
    except ValueError:
        raise ValueError(f"{path}: not a PEM certificate") from None


def endpoint_not_after(url: str, timeout: float = TIMEOUT) -> float:
    """Not-after of the certificate an endpoint presents in a TLS handshake.

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
            der = tls.getpeercert(binary_form=True)
    if not der:
        raise ValueError(f"{url}: no certificate presented")
    from cryptography import x509

    return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()


def response_headers(url: str, timeout: float = TIMEOUT) -> set[str]:
    """Lower-case names of the headers a GET of ``url`` answers with (any status)."""
    req = urllib.request.Request(url, headers={"User-Agent": "pitwatch-exporter"})
    ctx = ssl.create_default_context()
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return {k.lower() for k in resp.headers.keys()}
    except urllib.error.HTTPError as exc:  # a 404 or 500 still carries the headers
        return {k.lower() for k in exc.headers.keys()}


def _run(argv: list[str], timeout: float = TIMEOUT) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr.strip()[:200]}")
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


def firewall_active(kind: str = "auto") -> bool:
    """Whether a host firewall filters input.

    ``auto`` asks every tool that is installed; none installed means no firewall (False),
    which is a measurement, not a failure. A named tool that is missing is a failure.
    """
    kinds = list(FIREWALLS) if kind == "auto" else [kind]
    errors = []
    for name in kinds:
        argv, active = FIREWALLS[name]
        if shutil.which(argv[0]) is None:
            if kind != "auto":
                raise FileNotFoundError(f"{argv[0]} not found")
            continue
        try:
            if active(_run(argv)):
                return True
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            errors.append(str(exc))
    if errors and kind != "auto":
        raise RuntimeError("; ".join(errors))
    if errors and len(errors) == sum(shutil.which(FIREWALLS[n][0][0]) is not None for n in kinds):
        raise RuntimeError("; ".join(errors))  # every installed tool failed: we do not know
    return False
