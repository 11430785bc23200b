"""The security collector against real log files, certificates and HTTP(S) servers."""
from __future__ import annotations

import os
import shutil

import pytest

from pitwatch.exporters.logtail import LogTail
from pitwatch.exporters.security import SecurityCollector
from pitwatch.core.procs import free_port
from support.fixtures import SECURITY_HEADERS, make_cert, samples, success, value
from support.servers import HTTPServer

PATTERN = r"(?i)failed password"
FAIL = b"sshd: Failed password for root from 10.0.0.1\n"
OK = b"sshd: Accepted publickey for deploy\n"


def append(path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def test_tail_counts_incrementally(tmp_path):
    log = tmp_path / "auth.log"
    log.write_bytes(FAIL + OK + FAIL)
    tail = LogTail(log, PATTERN)
    assert tail.poll() == 2
    assert tail.poll() == 2  # nothing new, nothing counted twice
    append(log, b"sshd: Failed pass")  # half a line: wait for its end
    assert tail.poll() == 2
    append(log, b"word for x\n" + OK)
    assert tail.poll() == 3


def test_tail_survives_rotation_truncation_and_garbage(tmp_path):
    log = tmp_path / "auth.log"
    log.write_bytes(FAIL)
    tail = LogTail(log, PATTERN)
    assert tail.poll() == 1
    # logrotate: rename, the writer still appends to the old file, then a new file appears.
    os.rename(log, tmp_path / "auth.log.1")
    append(tmp_path / "auth.log.1", FAIL + FAIL)
    log.write_bytes(FAIL)
    assert tail.poll() == 4  # 2 late lines of the old file + 1 in the new one
    # copytruncate: the same file shrinks below our offset...
    log.write_bytes(b"")
    assert tail.poll() == 4
    append(log, FAIL)
    assert tail.poll() == 5
    # ...or is truncated and refilled past our offset before we look again.
    with open(log, "wb") as fh:
        fh.write(b"sshd: session opened for user deploy by (uid=0)\n" + FAIL)
    assert tail.poll() == 6
    # Binary garbage, invalid UTF-8 and a huge line without a newline never raise.
    append(log, os.urandom(200_000).replace(b"\n", b"") + b"\n" + b"\xff\xfe" + FAIL + b"\0" * 70_000)
    assert tail.poll() >= 7
    count = tail.poll()
    append(log, b"\n" + FAIL)
    assert tail.poll() == count + 1


def test_tail_missing_file_raises_and_keeps_count(tmp_path):
    log = tmp_path / "auth.log"
    log.write_bytes(FAIL)
    col = SecurityCollector(auth_logs=[log, tmp_path / "missing.log"], failure_pattern=PATTERN,
                            firewall="off")
    got = samples(col)
    assert success(got, "security") == 0
    assert value(got, "pitwatch_security_login_failures_total", source="auth.log") == 1
    assert value(got, "pitwatch_security_login_failures_total", source="missing.log") == 0


def test_unreadable_log_is_a_failure_not_a_crash(tmp_path):
    if os.geteuid() == 0:
        log = tmp_path / "a-folder.log"  # root reads everything: a folder cannot be read as a log
        log.mkdir()
    else:
        log = tmp_path / "auth.log"
        log.write_bytes(FAIL)
        log.chmod(0)
    got = samples(SecurityCollector(auth_logs=[log], failure_pattern=PATTERN, firewall="off"))
    assert success(got, "security") == 0


def test_certificate_files(tmp_path):
    soon, _, soon_after = make_cert(tmp_path, "soon", days=3)
    good, _, good_after = make_cert(tmp_path, "good", days=90)
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    got = samples(SecurityCollector(certificates=[soon, good, bad], firewall="off"))
    name = "pitwatch_security_tls_cert_not_after_timestamp_seconds"
    # make_cert names its certificates 127.0.0.1; the chain case is tests/test_tls_chain.py.
    assert value(got, name, source=str(soon), subject="127.0.0.1") == soon_after
    assert value(got, name, source=str(good), subject="127.0.0.1") == good_after
    assert not [k for k in got if k[0] == name and ("source", str(bad)) in k[1]]
    assert success(got, "security") == 0
    got = samples(SecurityCollector(certificates=[soon, good], firewall="off"))
    assert success(got, "security") == 1


def test_tls_endpoint_and_unreachable_endpoint(tmp_path):
    cert, key, not_after = make_cert(tmp_path, "server", days=10)
    with HTTPServer(SECURITY_HEADERS, cert=(cert, key)) as server:
        col = SecurityCollector(tls_endpoints=[server.url], firewall="off")
        for check in col.checks():
            check.run_once()
        got = samples(col)
    name = "pitwatch_security_tls_cert_not_after_timestamp_seconds"
    assert value(got, name, source=server.url, subject="127.0.0.1") == not_after
    assert success(got, "security") == 1
    nowhere = f"https://127.0.0.1:{free_port()}"
    col = SecurityCollector(tls_endpoints=[nowhere], firewall="off")
    for check in col.checks():
        check.run_once()
    got = samples(col)
    assert success(got, "security") == 0
    assert not [k for k in got if k[0] == name]


@pytest.mark.parametrize("present", [True, False])
def test_security_headers(present):
    required = list(SECURITY_HEADERS)
    with HTTPServer(SECURITY_HEADERS if present else {"Server-Timing": "x"}) as server:
        col = SecurityCollector(header_url=server.url, required_headers=required, firewall="off")
        assert not [k for k in samples(col) if k[0] == "pitwatch_security_http_header_present"]
        for check in col.checks():
            check.run_once()
        got = samples(col)
    assert success(got, "security") == 1
    for header in required:
        assert value(got, "pitwatch_security_http_header_present", header=header.lower()) == \
            (1 if present else 0)


def test_header_probe_of_unreachable_app():
    col = SecurityCollector(header_url=f"http://127.0.0.1:{free_port()}/",
                            required_headers=list(SECURITY_HEADERS), firewall="off")
    for check in col.checks():
        check.run_once()
    got = samples(col)
    assert success(got, "security") == 0
    # Unknown is not "missing": no header samples rather than a false alert.
    assert not [k for k in got if k[0] == "pitwatch_security_http_header_present"]


@pytest.fixture
def only_tools(tmp_path, monkeypatch):
    """PATH is a folder holding exactly the programs given (name -> real program): the
    probes find, or miss, the tools the test decides, whatever this host has installed."""
    def make(**tools: str) -> None:
        folder = tmp_path / "bin"
        folder.mkdir()
        for name, program in tools.items():
            (folder / name).symlink_to(shutil.which(program))
        monkeypatch.setenv("PATH", str(folder))
    return make


def probed(col: SecurityCollector) -> dict:
    for check in col.checks():
        check.run_once()
    return samples(col)


def test_fail2ban_without_its_client_is_a_failure(only_tools):
    only_tools()
    got = probed(SecurityCollector(fail2ban=True, firewall="off"))
    assert success(got, "security") == 0
    assert not [k for k in got if k[0] == "pitwatch_security_fail2ban_banned"]


def test_firewall_auto_without_any_tool_is_unknown(only_tools):
    only_tools()
    got = probed(SecurityCollector(firewall="auto"))
    # Nothing installed to ask: unknown (the firewall may live elsewhere), not "inactive"
    # and not a failure.
    assert value(got, "pitwatch_security_firewall_active") is None
    assert value(got, "pitwatch_security_firewall_known") == 0
    assert success(got, "security") == 1


def test_firewall_auto_when_every_installed_tool_fails_is_unknown(only_tools):
    only_tools(iptables="false")  # installed, but cannot be asked (as without CAP_NET_ADMIN)
    got = probed(SecurityCollector(firewall="auto"))
    # Not "no firewall": an unanswered question is a failure and no sample.
    assert value(got, "pitwatch_security_firewall_active") is None
    assert success(got, "security") == 0


def test_named_firewall_tool_missing_is_a_failure(only_tools):
    only_tools()
    got = probed(SecurityCollector(firewall="ufw"))
    assert value(got, "pitwatch_security_firewall_active") is None
    assert success(got, "security") == 0
