"""`pitwatch demo init`: a valid config, a seeded WAL database, idempotent."""
from __future__ import annotations

import datetime as dt
import sqlite3
import stat
import subprocess
import sys
import time

import yaml
from cryptography import x509

from pitwatch.core import config
from pitwatch.demo import platform, releases


def test_init_makes_a_valid_self_contained_platform(tmp_path):
    path = platform.init(tmp_path / "demo")
    cfg = config.load(path)
    root = path.parent
    assert path == root / "pitwatch.yml"
    # Every path the config names exists and lives inside the folder.
    for p in (cfg.platform.database, cfg.platform.releases_dir, cfg.backups.snapshots_dir,
              cfg.backups.litestream_config, cfg.security.auth_logs[0],
              cfg.security.certificates[0], cfg.remediation.token_file):
        assert p.exists(), p
        assert root in p.parents, p
    assert cfg.platform.app_pid_file.parent == root / "run"
    assert cfg.remediation.journal == root / "state" / "journal.db"
    ports = {int(cfg.platform.app_url.rsplit(":", 1)[1]), int(cfg.exporter.listen.rsplit(":", 1)[1]),
             int(cfg.remediation.listen.rsplit(":", 1)[1])}
    assert len(ports) == 3 and cfg.platform.app_url.startswith("http://127.0.0.1:")
    assert {q.name for q in cfg.trading_queries} >= {"last_trade_timestamp_seconds", "open_positions"}
    actions = {r.match.get("remediation"): r.action for r in cfg.remediation.policy}
    assert actions == {"rollback": "rollback", "restore": "restore", "restart": "restart"}
    assert cfg.platform.restart_command[-3:] == ["restart-app", "--config", str(path)]
    token = cfg.remediation.token_file
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and len(token.read_text().strip()) >= 32

    # The trading queries run on the seeded database and give sensible answers.
    db = sqlite3.connect(cfg.platform.database)
    assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
    results = {q.name: db.execute(q.sql).fetchall() for q in cfg.trading_queries}
    last = results["last_trade_timestamp_seconds"][0][0]
    assert time.time() - 3600 < last <= time.time()
    open_by_symbol = dict(results["open_positions"])
    assert {"ES", "NQ", "CL", "GC"} <= set(open_by_symbol) and all(v > 0 for v in open_by_symbol.values())
    assert db.execute("select count(*) from trades").fetchone()[0] >= 1000
    es = [r[0] for r in db.execute("select price from trades where symbol='ES'")]
    assert 4000 < min(es) and max(es) < 8000  # plausible E-mini S&P prices
    users = dict(db.execute("select username, password_hash from users"))
    assert "demo" in users and all(h.startswith(("scrypt:", "pbkdf2:")) for h in users.values())
    db.close()

    # Releases: a good one current, a bad one beside it.
    assert (root / "releases" / "current").resolve().name == platform.GOOD_RELEASE.version
    bad = releases.read(root / "releases" / platform.BAD_RELEASE.version)
    assert bad.error_rate >= 0.2 and bad.extra_latency_ms >= 200

    lite = yaml.safe_load(cfg.backups.litestream_config.read_text())
    assert lite["addr"].startswith("127.0.0.1:")
    assert lite["dbs"][0]["path"] == str(cfg.platform.database)
    assert lite["dbs"][0]["replica"]["type"] == "file"

    cert = x509.load_pem_x509_certificate(cfg.security.certificates[0].read_bytes())
    days = (cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)).days
    assert 88 <= days <= 90
    assert stat.S_IMODE((root / "tls" / "key.pem").stat().st_mode) == 0o600


def test_second_init_keeps_state_and_says_so(tmp_path):
    said: list[str] = []
    path = platform.init(tmp_path, echo=said.append)
    cfg = config.load(path)
    token = cfg.remediation.token_file.read_text()
    db = sqlite3.connect(cfg.platform.database)
    db.execute("insert into trades(account, symbol, side, quantity, price, executed_at)"
               " values ('x', 'ES', 'buy', 1, 6000, 1)")
    db.commit()
    db.close()
    releases.point_current(cfg.platform.releases_dir, platform.BAD_RELEASE.version)
    config_text = path.read_text()

    said.clear()
    assert platform.init(tmp_path, echo=said.append) == path
    assert any("kept existing" in line and "trading.db" in line for line in said)
    assert cfg.remediation.token_file.read_text() == token
    assert path.read_text() == config_text
    db = sqlite3.connect(cfg.platform.database)
    assert db.execute("select count(*) from trades where account='x'").fetchone()[0] == 1
    assert releases.current(cfg.platform.releases_dir).version == platform.BAD_RELEASE.version


def test_cli_init_and_config_check(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "pitwatch", *a],
                                    capture_output=True, text=True, timeout=60)
    out = run("demo", "init", str(tmp_path / "d"))
    assert out.returncode == 0, out.stderr
    assert "demo platform ready" in out.stdout
    check = run("config", "check", str(tmp_path / "d" / "pitwatch.yml"))
    assert check.returncode == 0, check.stderr
    for args in (["demo", "--help"], ["demo", "init", "--help"], ["demo", "app", "--help"],
                 ["demo", "restart-app", "--help"], ["demo", "traffic", "--help"],
                 ["demo", "stop-app", "--help"], ["demo", "somewhere", "--help"]):
        res = run(*args)
        assert res.returncode == 0 and "usage:" in res.stdout, (args, res.stderr)
