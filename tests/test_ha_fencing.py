"""Fencing tokens: a run whose lock expired cannot finish a switch a newer run started, and
Redis hands out ever-growing tokens, even after it restarted empty."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from pitwatch.core.procs import free_port
from pitwatch.remediation.claims import RedisClaims
from support.toy_platform import PY, make_platform
from support.servers import start_redis


def rollback(platform, token: str | None, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PITWATCH_FENCING_TOKEN"}
    if token is not None:
        env["PITWATCH_FENCING_TOKEN"] = token
    return subprocess.run([PY, "-m", "pitwatch", "rollback", "--config", str(platform.config), *args],
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture
def platform(tmp_path):
    p = make_platform(tmp_path / "platform", {"v1": True, "v2": True, "v3": True}, current="v3")
    yield p
    p.stop()


def test_a_stale_token_cannot_switch_after_a_newer_one(platform):
    newer = rollback(platform, "2000")  # the run holding the lock now
    assert newer.returncode == 0, newer.stdout + newer.stderr
    assert platform.current() == "v2"
    stale = rollback(platform, "1000")  # its lock expired while it was still going
    assert stale.returncode != 0
    assert "older than 2000" in stale.stdout + stale.stderr
    assert platform.current() == "v2" and platform.healthy()
    # A person at the keyboard has no token and is never fenced.
    by_hand = rollback(platform, None, "--to", "v1")
    assert by_hand.returncode == 0, by_hand.stdout + by_hand.stderr
    assert platform.current() == "v1"


def test_redis_tokens_grow_across_an_empty_restart(tmp_path):
    port = free_port()
    server, _ = start_redis(tmp_path, port=port)
    try:
        claims = RedisClaims(f"redis://127.0.0.1:{port}/0")
        first = claims.lock("platform", ttl=5)
        assert first.token >= int(time.time() * 1000) - 5000  # on Redis's clock, in ms
        first.release()
        second = claims.lock("platform", ttl=5)
        assert second.token > first.token
        second.release()
        server.stop()
        server, _ = start_redis(tmp_path, port=port)  # no persistence: the counters are gone
        third = claims.lock("platform", ttl=5)
        assert third.token > second.token
        third.release()
    finally:
        server.stop()
