"""Rollback and deploy on a real little platform: release folders, a `current` link, an
app whose /health follows its release, restart by pid file."""
from __future__ import annotations

import os
import threading

import pytest

from pitwatch.core import backups, market
from pitwatch.core.config import load
from pitwatch.remediation.operations.releases import Folders
from support.toy_platform import make_platform


@pytest.fixture
def platforms():
    made = []

    def make(*args, **kw):
        p = make_platform(*args, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def test_rollback_to_the_previous_release(tmp_path, platforms):
    p = platforms(tmp_path, {"v1": True, "v2": True, "v10": False}, current="v10")
    assert not p.healthy() and p.version() == "v10"
    out = p.pitwatch("rollback")
    assert out.returncode == 0, out.stderr + out.stdout
    assert p.current() == "v2"  # natural order: v10 is newer than v2
    assert p.healthy() and p.version() == "v2"
    assert "rolled back to v2" in out.stdout


def test_unhealthy_target_falls_back_to_an_older_healthy_release(tmp_path, platforms):
    p = platforms(tmp_path, {"v1": True, "v2": False, "v3": False}, current="v3")
    out = p.pitwatch("rollback")
    assert out.returncode == 0, out.stderr + out.stdout
    assert "v2: unhealthy" in out.stdout
    assert p.current() == "v1" and p.healthy() and p.version() == "v1"


def test_a_release_whose_api_is_gone_is_unhealthy_though_its_health_is_green(tmp_path, platforms):
    p = platforms(tmp_path, {"v1": True, "v2": {"api": False}, "v3": False}, current="v3")
    p.write_config(smoke={"urls": [{"url": p.url + "/api/trades", "name": "trades"}]})
    out = p.pitwatch("rollback")
    assert out.returncode == 0, out.stderr + out.stdout
    assert "trades: status 404, expected 200" in out.stdout
    assert "v2: unhealthy" in out.stdout
    assert p.current() == "v1" and p.version() == "v1"


def test_without_smoke_urls_only_health_is_checked(tmp_path, platforms):
    # The same broken release passes a gate that knows only /health: the case above
    # fails for the smoke URL, not for something else about v2.
    p = platforms(tmp_path, {"v1": True, "v2": {"api": False}, "v3": False}, current="v3")
    out = p.pitwatch("rollback")
    assert out.returncode == 0, out.stderr + out.stdout
    assert p.current() == "v2"


def test_no_healthy_target_puts_the_link_back(tmp_path, platforms):
    p = platforms(tmp_path, {"v1": False, "v2": True}, current="v2")
    out = p.pitwatch("rollback")
    assert out.returncode == 1
    assert "putting v2 back" in out.stdout and "rollback failed" in out.stderr
    assert p.current() == "v2" and p.healthy() and p.version() == "v2"


def test_rollback_to_a_named_release_and_to_a_missing_one(tmp_path, platforms):
    p = platforms(tmp_path, {"v1": True, "v2": True, "v3": True}, current="v3")
    assert p.pitwatch("rollback", "--to", "v1").returncode == 0
    assert p.current() == "v1" and p.version() == "v1"
    out = p.pitwatch("rollback", "--to", "v9")
    assert out.returncode == 1 and "no release 'v9'" in out.stderr
    assert p.current() == "v1" and p.healthy()


def test_the_link_switch_is_atomic(tmp_path):
    releases = tmp_path / "releases"
    for v in ("a", "b"):
        (releases / v).mkdir(parents=True)
    (releases / "current").symlink_to("a")
    cfg = tmp_path / "pitwatch.yml"
    cfg.write_text(f"platform: {{database: {tmp_path}/t.db, releases_dir: {releases}}}\n")
    folders = Folders(load(cfg).platform)
    seen, stop = set(), threading.Event()

    def watch():
        while not stop.is_set():
            try:
                seen.add(os.readlink(releases / "current"))
            except FileNotFoundError:
                seen.add("MISSING")

    t = threading.Thread(target=watch)
    t.start()
    for i in range(300):
        folders.set("ab"[i % 2])
    stop.set()
    t.join()
    assert seen <= {"a", "b"} and "MISSING" not in seen
    assert sorted(x.name for x in releases.iterdir()) == ["a", "b", "current"]  # no temp link left


def test_deploy_snapshots_first_and_rolls_itself_back(tmp_path, platforms):
    p = platforms(tmp_path, {"v1": True, "v2": True, "v3": False}, current="v1")
    out = p.pitwatch("deploy", "v2", "--force")
    assert out.returncode == 0, out.stderr + out.stdout
    assert p.current() == "v2" and p.version() == "v2"
    out = p.pitwatch("deploy", "v3", "--force")
    assert out.returncode == 1 and "rolled back to v2" in out.stderr
    assert p.current() == "v2" and p.healthy()
    snaps = backups.list_snapshots(tmp_path / "snapshots")
    assert len(snaps) >= 1 and snaps[0].tables == {"trades": 500}
    out = p.pitwatch("deploy", "v9", "--force")
    assert out.returncode == 1 and "no release 'v9'" in out.stderr


def test_deploy_refuses_while_the_market_trades(tmp_path, platforms):
    p = platforms(tmp_path, {"v1": True, "v2": True}, current="v1")
    before = market.is_open()
    out = p.pitwatch("deploy", "v2")
    if market.is_open() != before:
        pytest.skip("the market opened or closed during the test")
    if before:
        assert out.returncode == 3 and "refused" in out.stderr
        assert p.current() == "v1"
    else:
        assert out.returncode == 0 and p.current() == "v2"


def test_compose_flavour_rewrites_the_env_tag_and_calls_compose(tmp_path, platforms):
    p = platforms(tmp_path, {"v1": True, "v2": True, "v3": False}, current="v2", compose=True)
    env = tmp_path / "compose.env"
    out = p.pitwatch("deploy", "v3", "--force", "--no-snapshot")
    assert out.returncode == 1, out.stdout + out.stderr
    assert env.read_text() == "# compose settings\nCOMPOSE_PROJECT_NAME=trading\nAPP_IMAGE_TAG=v2\n"
    compose_calls = [c for c in p.calls() if c.startswith("compose")]
    assert compose_calls == [f"compose -f {tmp_path}/docker-compose.yml up -d app"] * 2
    assert p.version() == "v2" and p.healthy()
    out = p.pitwatch("rollback")  # history: v2 (before), v3, v2 -> older than v2: none
    assert out.returncode == 1 and "no release older" in out.stderr
    out = p.pitwatch("deploy", "v1", "--force", "--no-snapshot")
    assert out.returncode == 0 and p.version() == "v1"
    out = p.pitwatch("rollback", "--to", "v2")
    assert out.returncode == 0 and p.version() == "v2"
    assert "APP_IMAGE_TAG=v2\n" in env.read_text()
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]


def test_restart_runs_the_restart_command_and_waits_for_health(tmp_path, platforms):
    p = platforms(tmp_path, {"v1": True, "v2": False}, current="v1")
    pid_before = (p.state / "app.pid").read_text()
    out = p.pitwatch("restart")
    assert out.returncode == 0, out.stderr
    assert p.calls()[-1] == "restart" and (p.state / "app.pid").read_text() != pid_before
    assert p.healthy()
    (p.releases / "v1" / "release.json").write_text('{"version": "v1", "healthy": false}')
    out = p.pitwatch("restart")
    assert out.returncode == 1 and "not healthy" in out.stderr
