"""The remediator's status page (GET /) in headless Chromium, after a real rollback: the
token opens it once and a cookie keeps it open; it shows the episode, the versions, the
output, the cooldown, the market and the claims; alert text is shown, never run."""
from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest
import requests

from pitwatch.core.procs import free_port
from support.remediation import TOKEN, Receiver, alert, notification, remediation_config
from support.toy_platform import make_platform
from support.waiting import EVENTUALLY, STARTUP, wait_until

READ_TOKEN = "read-only-token-for-the-page"
HOSTILE = '<img src=x onerror="document.title=1"><script>document.title=2</script>'
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Elements(HTMLParser):
    """Every element's tag, and the page's text."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture
def page(tmp_path):
    platform = make_platform(tmp_path / "platform", {"v1": True, "v2": False}, current="v2")
    port = free_port()
    (tmp_path / "read_token").write_text(READ_TOKEN + "\n")
    platform.write_config(remediation=remediation_config(tmp_path, port, policy=[
        {"name": "rollback_bad_release", "match": {"remediation": "rollback"},
         "action": "rollback", "cooldown": "30m", "max_runs": 2, "window": "6h", "timeout": "60s"},
        {"name": "restart_stuck", "match": {"remediation": "restart"}, "action": "restart",
         "dry_run": True}], read_token_file=str(tmp_path / "read_token")))
    receiver = Receiver(platform.config, port, tmp_path / "remediator.log")
    try:
        started = datetime.now(timezone.utc) - timedelta(seconds=5)
        bad = alert("BadRelease", fingerprint="bad01", starts_at=iso(started),
                    remediation="rollback", severity="critical")
        assert receiver.post(notification([bad])).status_code == 200
        auth = {"Authorization": f"Bearer {READ_TOKEN}"}
        wait_until(lambda: requests.get(receiver.url + "/actions", headers=auth, timeout=10)
                   .json()["runs"][0]["status"] == "success", EVENTUALLY, what="the rollback")
        # Held back: a new episode inside the cooldown, and a dry run with hostile labels.
        again = {**bad, "startsAt": iso(datetime.now(timezone.utc))}
        stuck = alert("AppStuck", fingerprint="stuck1", remediation="restart", note=HOSTILE)
        assert receiver.post(notification([again, stuck])).status_code == 200
        yield receiver, tmp_path
    finally:
        receiver.stop()
        platform.stop()


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                           *args], capture_output=True, text=True, timeout=STARTUP)


def test_the_token_opens_the_page_once_and_a_cookie_keeps_it(page):
    receiver, _ = page
    url = receiver.url + "/"
    assert requests.get(url, timeout=10).status_code == 401
    assert "read token" in requests.get(url, timeout=10).text
    assert requests.get(url, params={"token": "wrong"}, timeout=10).status_code == 401
    opened = requests.get(url, params={"token": READ_TOKEN}, allow_redirects=False, timeout=10)
    assert opened.status_code == 303 and opened.headers["Location"] == "/"
    cookie = opened.headers["Set-Cookie"]
    for part in ("pitwatch_read=", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert part in cookie
    assert READ_TOKEN not in cookie and TOKEN not in cookie
    value = opened.cookies["pitwatch_read"]
    shown = requests.get(url, cookies={"pitwatch_read": value}, timeout=10)
    assert shown.status_code == 200 and "BadRelease" in shown.text
    assert "script-src" not in shown.headers["Content-Security-Policy"]  # default-src 'none'
    assert "default-src 'none'" in shown.headers["Content-Security-Policy"]
    assert shown.headers["Cache-Control"] == "no-store"
    assert requests.get(url, cookies={"pitwatch_read": value + "0"}, timeout=10).status_code == 401
    # The bearer header opens it too (webhook or read token); the cookie posts nothing.
    assert requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).ok
    assert requests.get(receiver.url + "/actions", cookies={"pitwatch_read": value},
                        timeout=10).ok
    body = notification([alert("X")])
    assert requests.post(receiver.url + "/alerts", json=body, cookies={"pitwatch_read": value},
                         timeout=10).status_code == 401


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_status_page_in_headless_chromium(page):
    receiver, tmp_path = page
    # Without the token Chromium gets the login page; with it once, the page itself.
    login = chromium(tmp_path, "--dump-dom", receiver.url + "/")
    assert "read token" in login.stdout and "BadRelease" not in login.stdout, login.stderr
    dom = chromium(tmp_path, "--dump-dom", f"{receiver.url}/?token={READ_TOKEN}")
    assert dom.returncode == 0, dom.stderr
    seen = Elements(dom.stdout)
    text = " ".join(" ".join(seen.text).split())
    print(text[:3000])
    # The episode, its run, what changed, the verdict and the output.
    assert "BadRelease" in text and "rule rollback_bad_release" in text
    assert "run 1: rollback → success" in text
    assert "release v2 → v1" in text
    assert "verdict: rolled back to v1; the app is healthy" in text
    assert "current release: v2 switching to v1" in text  # the output, in its <pre>
    # Held back: the cooldown (in the episode and the rules table) and the dry run.
    assert "suppressed cooldown" in text
    assert "cooldown until" in text
    assert "dry_run dry_run" in text and "AppStuck" in text
    # The market and the claims.
    assert ("Market (CME Globex): open" in text) or ("Market (CME Globex): closed" in text)
    assert "opens at" in text or "closes at" in text
    assert "Claims: local" in text and "answering" in text
    # Alert text is shown as text: no element of it exists in the page.
    assert HOSTILE in text
    assert "img" not in seen.tags and "script" not in seen.tags
    shot = tmp_path / "status-page.png"
    done = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2200",
                    "--hide-scrollbars", f"{receiver.url}/?token={READ_TOKEN}")
    assert done.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", done.stderr
    print(f"status page screenshot: {shot}")
