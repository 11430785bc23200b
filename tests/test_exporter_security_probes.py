"""The firewall as active, inactive or unknown (no tool, needs root), fail2ban refusing
an unprivileged user, and the header probe at the proxy in front of the app.

The firewall tools are real programs found through ``tool_path`` (or PATH): small
scripts answering as nft, iptables, ufw and fail2ban-client do, so each case runs the
same on any host."""
from __future__ import annotations

import os
import shutil
import stat

import pytest

from pitwatch import check
from pitwatch.core import config
from pitwatch.exporters import probes
from pitwatch.exporters.registry import build_registry
from pitwatch.exporters.security import SecurityCollector
from support.fixtures import SECURITY_HEADERS, make_cert, make_db, samples, success, value
from support.servers import HTTPServer

TOOLS = ("nft", "iptables", "ufw")
ACTIVE = "pitwatch_security_firewall_active"
KNOWN = "pitwatch_security_firewall_known"


def tools(folder, **scripts: str) -> str:
    """A folder holding exactly these programs: name -> shell script body."""
    folder.mkdir(exist_ok=True)
    for name, body in scripts.items():
        path = folder / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(folder)


def probed(col: SecurityCollector) -> dict:
    for c in col.checks():
        c.run_once()
    return samples(col)


REFUSED = {  # what each tool prints to an unprivileged user
    "nft": 'echo "Error: Could not process rule: Operation not permitted" >&2; exit 1',
    "iptables": 'echo "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: '
                'Permission denied (you must be root)" >&2; exit 4',
    "ufw": 'echo "ERROR: You need to be root to run this script" >&2; exit 1',
}


@pytest.mark.skipif(any(shutil.which(t) for t in TOOLS), reason="this host has a firewall tool")
def test_this_host_has_no_firewall_tool_so_the_state_is_unknown():
    got = probed(SecurityCollector(firewall="auto"))
    assert value(got, ACTIVE) is None  # not "inactive": nothing pages
    assert value(got, KNOWN) == 0
    assert success(got, "security") == 1  # nothing to ask is not a broken source


def test_no_tool_installed_is_unknown_not_inactive(tmp_path):
    col = SecurityCollector(firewall="auto", tool_path=tools(tmp_path / "bin"))
    got = probed(col)
    assert (value(got, ACTIVE), value(got, KNOWN), success(got, "security")) == (None, 0, 1)
    assert col.details() == {"firewall": "none of nft, iptables, ufw is installed"}


@pytest.mark.parametrize("tool", TOOLS)
def test_a_refusing_tool_needs_root_and_is_unknown(tmp_path, tool):
    col = SecurityCollector(firewall="auto", tool_path=tools(tmp_path / "bin", **{tool: REFUSED[tool]}))
    got = probed(col)
    assert (value(got, ACTIVE), value(got, KNOWN), success(got, "security")) == (None, 0, 0)
    (problem,) = col.last_problems
    assert problem.startswith(f"firewall: {tool} needs root (or CAP_NET_ADMIN): ")
    assert any(w in problem for w in ("not permitted", "must be root", "need to be root"))


def test_refused_and_inactive_together_is_still_unknown(tmp_path):
    # ufw says inactive, but nft (which may hold the rules) could not be asked.
    path = tools(tmp_path / "bin", nft=REFUSED["nft"], ufw='echo "Status: inactive"')
    got = probed(SecurityCollector(firewall="auto", tool_path=path))
    assert (value(got, ACTIVE), value(got, KNOWN)) == (None, 0)


def test_active_and_inactive_are_measured(tmp_path):
    active = tools(tmp_path / "a", iptables='echo "-P INPUT DROP"; echo "-A INPUT -i lo -j ACCEPT"')
    got = probed(SecurityCollector(firewall="auto", tool_path=active))
    assert (value(got, ACTIVE), value(got, KNOWN), success(got, "security")) == (1, 1, 1)
    inactive = tools(tmp_path / "i", ufw='echo "Status: inactive"',
                     iptables='echo "-P INPUT ACCEPT"')
    got = probed(SecurityCollector(firewall="auto", tool_path=inactive))
    assert (value(got, ACTIVE), value(got, KNOWN), success(got, "security")) == (0, 1, 1)


def test_a_named_tool_that_is_missing_is_a_failure(tmp_path):
    col = SecurityCollector(firewall="nftables", tool_path=tools(tmp_path / "bin"))
    got = probed(col)
    assert (value(got, ACTIVE), value(got, KNOWN), success(got, "security")) == (None, 0, 0)
    assert col.last_problems == ("firewall: nft not found",)


def test_fail2ban_refusing_says_needs_root(tmp_path, monkeypatch):
    body = ('echo "ERROR  Permission denied to socket: /var/run/fail2ban/fail2ban.sock, '
            '(you must be root)" >&2; exit 255')
    monkeypatch.setenv("PATH", tools(tmp_path / "bin", **{"fail2ban-client": body}))
    col = SecurityCollector(fail2ban=True, firewall="off")
    got = probed(col)
    assert success(got, "security") == 0
    assert not [k for k in got if k[0] == "pitwatch_security_fail2ban_banned"]
    assert "fail2ban-client needs root" in col.last_problems[0]
    with pytest.raises(probes.NeedsRoot):
        probes.fail2ban_banned()


def test_check_shows_an_unknown_firewall_as_info_without_changing_the_verdict(tmp_path):
    col = SecurityCollector(firewall="auto", tool_path=tools(tmp_path / "bin"))
    for c in col.checks():
        c.run_once()
    findings = check.evaluate(check.Samples(col.collect()),
                              details={f"security:{k}": v for k, v in col.details().items()})
    line = next(f for f in findings if f.check == "firewall")
    assert (line.status, line.detail) == (check.INFO, "unknown: none of nft, iptables, ufw is installed")
    assert check.verdict(findings) == check.OK and check.EXIT[check.verdict(findings)] == 0
    text = check.render_text(findings, colour=False)
    assert "INFO  security  firewall: unknown" in text
    assert text.splitlines()[-1] == "healthy: 1 ok, 0 warn, 0 fail, 1 not judged"


# -- the header probe at the proxy -------------------------------------------------------

@pytest.fixture
def app_behind_proxy(tmp_path):
    """The app answers without security headers; the TLS proxy in front adds them. The
    proxy's certificate is self-signed, for a name the probe does not use."""
    cert, key, _ = make_cert(tmp_path, "proxy", days=30)
    with HTTPServer({}) as app, HTTPServer(SECURITY_HEADERS, cert=(cert, key)) as proxy:
        yield app.url, proxy.url


def headers_of(tmp_path, **security):
    db = tmp_path / "trading.db"
    if not db.exists():
        make_db(db, trades=10)
    app_url = security.pop("app_url")
    cfg = config.parse({"platform": {"database": str(db), "app_url": app_url},
                        "smoke": {"urls": []}, "trading": {"activity": "none"},
                        "security": {"firewall": "off", **security}})
    registry = build_registry(cfg, process_metrics=False)
    registry.run_checks_once()
    sec = registry.concern("security")
    return samples(sec), sec


def test_headers_set_by_the_proxy_are_found_at_the_proxy(tmp_path, app_behind_proxy):
    app, proxy = app_behind_proxy
    at_app, _ = headers_of(tmp_path, app_url=app)
    at_proxy, sec = headers_of(tmp_path, app_url=app, header_probe_url=proxy + "/")
    for header in SECURITY_HEADERS:
        assert value(at_app, "pitwatch_security_http_header_present", header=header.lower()) == 0
        assert value(at_proxy, "pitwatch_security_http_header_present", header=header.lower()) == 1
    assert success(at_proxy, "security") == 1 and sec.last_problems == ()


def test_no_required_headers_is_no_header_probe(tmp_path, app_behind_proxy):
    app, _ = app_behind_proxy
    got, sec = headers_of(tmp_path, app_url=app, required_headers=[])
    assert "headers" not in sec._checks
    assert not [k for k in got if k[0] == "pitwatch_security_http_header_present"]


def test_header_probe_url_must_be_http():
    with pytest.raises(config.ConfigError, match="security.header_probe_url: must start with http"):
        config.parse({"platform": {"database": "/x.db"},
                      "security": {"header_probe_url": "trading.example.com"}})
