"""The smoke collector against a real HTTP server on 127.0.0.1: answers, failures, a
slow answer, a redirect, nothing listening; the background schedule; the config's
default (the app's health URL); promtool-clean exposition."""
from __future__ import annotations

import http.server
import subprocess
import threading
import time

import pytest
from prometheus_client import generate_latest

from pitwatch.core import config
from pitwatch.core.procs import free_port
from pitwatch.exporters.registry import build_registry
from pitwatch.exporters.smoke import SmokeCollector, Target, probe, public_label
from support.fixtures import make_db, samples, success, value
from support.waiting import wait_until

SLOW = 0.4


class App:
    """A threaded HTTP server: /health 200, /broken 500, /slow 200 after SLOW s,
    /moved 302, /teapot 418; it counts the requests it got per path."""

    def __init__(self):
        hits: dict[str, int] = {}
        self.hits = hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, body: bool):
                hits[self.path] = hits.get(self.path, 0) + 1
                status = {"/health": 200, "/broken": 500, "/slow": 200, "/moved": 302,
                          "/teapot": 418}.get(self.path, 404)
                if self.path == "/slow":
                    time.sleep(SLOW)
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", "/health")
                self.send_header("Content-Length", "3")
                self.end_headers()
                if body:
                    try:
                        self.wfile.write(b"ok\n")
                    except BrokenPipeError:  # a client that timed out has gone
                        pass

            def do_GET(self):  # noqa: N802
                self._answer(True)

            def do_HEAD(self):  # noqa: N802
                self._answer(False)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def app():
    server = App()
    yield server
    server.close()


def target(url: str, label: str | None = None, **kw) -> Target:
    return Target(url, label or url, **kw)


def test_healthy_url(app):
    r = probe(target(app.url + "/health"))
    assert (r.success, r.status, r.error) == (True, 200, "")
    assert 0 < r.duration < 1 and abs(r.finished - time.time()) < 5


def test_server_error_is_a_failed_answer(app):
    r = probe(target(app.url + "/broken"))
    assert (r.success, r.status) == (False, 500)
    assert r.error == "status 500, expected 200"


def test_expected_status_is_configurable(app):
    assert probe(target(app.url + "/teapot", expect_status=(418,))).success
    assert not probe(target(app.url + "/teapot")).success


def test_redirect_is_not_followed(app):
    # A 302 to a healthy page is not "up": the status is reported as it came.
    r = probe(target(app.url + "/moved"))
    assert (r.success, r.status) == (False, 302)
    assert probe(target(app.url + "/moved", expect_status=(302,))).success


def test_head_request(app):
    before = app.hits.get("/health", 0)
    assert probe(target(app.url + "/health", method="HEAD")).success
    assert app.hits["/health"] == before + 1


def test_slow_answer_is_measured_and_fails_past_its_timeout(app):
    ok = probe(target(app.url + "/slow"))
    assert ok.success and ok.duration >= SLOW
    late = probe(target(app.url + "/slow", timeout=SLOW / 4))
    assert not late.success and late.status == 0 and late.error == "timed out"
    assert late.duration < SLOW


def test_nothing_listening():
    r = probe(target(f"http://127.0.0.1:{free_port()}/health"))
    assert (r.success, r.status) == (False, 0)
    assert "refused" in r.error.lower()


def test_labels_carry_no_credentials():
    assert public_label("https://user:secret@shop.example:8443/health?x=1") == \
        "https://shop.example:8443/health?x=1"
    assert public_label("http://127.0.0.1:5000") == "http://127.0.0.1:5000/"


def test_collector_metrics_and_a_failure_is_not_a_collector_failure(app):
    col = SmokeCollector([target(app.url + "/health", "health"),
                          target(app.url + "/broken", "broken"),
                          target(f"http://127.0.0.1:{free_port()}/", "gone")], interval=15)
    assert [k for k in samples(col) if k[0].startswith("pitwatch_smoke_")] == []  # not probed yet
    for check in col.checks():
        check.run_once()
    got = samples(col)
    assert value(got, "pitwatch_smoke_success", url="health") == 1
    assert value(got, "pitwatch_smoke_status_code", url="health") == 200
    assert value(got, "pitwatch_smoke_success", url="broken") == 0
    assert value(got, "pitwatch_smoke_status_code", url="broken") == 500
    assert value(got, "pitwatch_smoke_success", url="gone") == 0
    assert value(got, "pitwatch_smoke_status_code", url="gone") == 0
    assert value(got, "pitwatch_smoke_duration_seconds", url="health") > 0
    assert time.time() - value(got, "pitwatch_smoke_timestamp_seconds", url="gone") < 30
    assert success(got, "smoke") == 1
    assert col.details()["broken"] == "status 500, expected 200"
    assert "health" not in col.details()


def test_probes_run_in_the_background_and_the_scrape_reads_the_cache(app):
    col = SmokeCollector([target(app.url + "/slow", "slow")], interval=0.2)
    before = app.hits.get("/slow", 0)
    col.checks()[0].start()
    try:
        # The third request has started, so the first has finished and been cached.
        wait_until(lambda: app.hits.get("/slow", 0) >= before + 3, 30, what="background probes")
        started = time.perf_counter()
        got = samples(col)
        assert time.perf_counter() - started < SLOW  # no request inside the scrape
        assert value(got, "pitwatch_smoke_success", url="slow") == 1
    finally:
        col.checks()[0].stop()


def test_two_urls_with_one_label_are_refused(app):
    with pytest.raises(ValueError, match="share the label"):
        SmokeCollector([target(app.url + "/health", "x"), target(app.url + "/broken", "x")])


def registry_for(tmp_path, **sections):
    db = tmp_path / "trading.db"
    raw = {"platform": {"database": str(db if db.exists() else make_db(db, trades=10)),
                        **sections.pop("platform", {})},
           "security": {"firewall": "off", "required_headers": []},
           "trading": {"activity": "none"}, **sections}
    return build_registry(config.parse(raw), process_metrics=False)


def test_default_is_the_apps_health_url(tmp_path, app):
    reg = registry_for(tmp_path, platform={"app_url": app.url, "health_path": "/health"})
    smoke = reg.concern("smoke")
    assert [t.url for t in smoke.targets] == [app.url + "/health"]
    reg.run_checks_once()
    body = generate_latest(reg).decode()
    assert f'pitwatch_smoke_success{{url="{app.url}/health"}} 1.0' in body
    lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                          text=True)
    assert (lint.returncode, lint.stdout + lint.stderr) == (0, "")


def test_configured_urls_and_switching_it_off(tmp_path, app):
    reg = registry_for(tmp_path, platform={"app_url": app.url},
                       smoke={"interval": "30s", "urls": [
                           {"url": app.url + "/health", "name": "health"},
                           {"url": app.url + "/broken", "expect_status": [500], "timeout": "2s"}]})
    smoke = reg.concern("smoke")
    assert smoke.interval == 30
    assert [t.label for t in smoke.targets] == ["health", app.url + "/broken"]
    reg.run_checks_once()
    got = samples(smoke)
    assert value(got, "pitwatch_smoke_success", url="health") == 1
    assert value(got, "pitwatch_smoke_success", url=app.url + "/broken") == 1  # 500 expected
    off = registry_for(tmp_path, platform={"app_url": app.url}, smoke={"urls": []})
    assert "smoke" not in [c.name for c in off.concerns]


@pytest.mark.parametrize("smoke,problem", [
    ({"urls": [{"url": "ftp://x/"}]}, "smoke.urls[0].url: must start with http"),
    ({"urls": [{"url": "http://x/", "expect_status": [700]}]}, "700 is not an HTTP status"),
    ({"urls": [{"url": "http://x/", "timeout": "0s"}]}, "must be longer than 0s"),
    ({"urls": [{"url": "http://x/"}, {"url": "http://x/"}]}, "duplicate smoke url"),
    ({"urls": [{"url": "http://x/", "name": "a b"}]}, "smoke.urls[0].name"),
])
def test_config_mistakes_are_named(smoke, problem):
    with pytest.raises(config.ConfigError) as err:
        config.parse({"platform": {"database": "/x.db"}, "smoke": smoke})
    assert problem in str(err.value)
