"""The demo's steady error mode: `pitwatch slo burn DIR` switches a running traffic
generator, which then fails an exact, evenly spread share of its requests, and the demo
app answers those 500 (API routes only)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from pitwatch.core import config
from pitwatch.demo import app as demo_app
from pitwatch.demo import platform, traffic
from support.fixtures import without_redis

MIX = [a for a, _ in traffic.MIX], [w for _, w in traffic.MIX]


def burn(root, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pitwatch", "slo", "burn", str(root), *argv],
                          capture_output=True, text=True, timeout=60)


def test_an_exact_share_spread_evenly():
    gen = traffic.Traffic("http://127.0.0.1:9")
    gen.set_error_ratio(0.005)
    actions = [gen.next_action(*MIX) for _ in range(2000)]
    faults = [i for i, a in enumerate(actions) if a == "fault"]
    assert len(faults) == 10
    assert {b - a for a, b in zip(faults, faults[1:])} == {200}
    gen.set_error_ratio(0.0)
    assert "fault" not in {gen.next_action(*MIX) for _ in range(2000)}


def test_the_command_switches_a_generator_that_polls(tmp_path):
    gen = traffic.Traffic("http://127.0.0.1:9", mode_file=tmp_path / traffic.MODE_FILE)
    gen.poll_mode()
    assert gen.error_ratio == 0
    proc = burn(tmp_path, "--error-ratio", "0.005")
    assert proc.returncode == 0, proc.stderr
    gen.poll_mode()
    assert gen.error_ratio == 0.005
    assert burn(tmp_path, "--off").returncode == 0
    gen.poll_mode()
    assert gen.error_ratio == 0
    (tmp_path / traffic.MODE_FILE).unlink()
    gen.set_error_ratio(0.01)
    gen.poll_mode()  # no file: the normal mix
    assert gen.error_ratio == 0


@pytest.mark.parametrize("argv,message", [
    (["--error-ratio", "1.5"], "not in [0, 1)"),
    ([], "one of the arguments --error-ratio --off is required"),
])
def test_bad_arguments(tmp_path, argv, message):
    proc = burn(tmp_path, *argv)
    assert proc.returncode == 2 and message in proc.stderr
    assert not (tmp_path / traffic.MODE_FILE).exists()


def test_the_demo_app_fails_requests_carrying_the_fault_header(tmp_path):
    cfg = config.load(without_redis(platform.init(tmp_path / "demo")))
    client = demo_app.create_app(cfg).test_client()
    fault = {demo_app.FAULT_HEADER: "500"}
    assert client.get("/api/positions").status_code == 200
    assert client.get("/api/positions", headers=fault).status_code == 500
    assert client.get("/health", headers=fault).status_code == 200  # users meet the API
    metrics = client.get("/metrics").get_data(as_text=True)
    assert re.search(r'pitwatch_app_http_request_total\{[^}]*status="500"[^}]*\} 1\.0', metrics)
