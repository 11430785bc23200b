"""``init(dir)``: a self-contained demo platform in one folder.

Layout (every path in ``pitwatch.yml`` is relative to the folder, except the restart
command, which others run from anywhere)::

    pitwatch.yml            the config; ports chosen free on 127.0.0.1 at first init
    trading.db              SQLite in WAL mode, seeded with trades, positions, users
    litestream.yml          file replica in replica/, metrics on its own port
    releases/1.4.2/         release.json of the good build
    releases/1.5.0/         the bad one: ~30% of /api requests fail, +300 ms
    releases/current        -> 1.4.2
    backups/  replica/  run/  state/
    logs/auth.log           failed logins, sshd/pam style
    tls/cert.pem key.pem    self-signed, 90 days
    secrets/webhook.token   bearer token of the remediation webhook (0600)
    secrets/demo-user.password   the `demo` user's password (the traffic generator logs in)

Idempotent: what exists is kept (a second init never re-seeds the database, turns a
token or moves ``current``) and reported as kept.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import random
import secrets
import sys
import time
from pathlib import Path
from typing import Callable

from pitwatch.demo import releases, store
from pitwatch.demo.instruments import INSTRUMENTS, round_to_tick
from pitwatch.core.procs import free_port

log = logging.getLogger("pitwatch.demo.platform")

GOOD_RELEASE = releases.Release("1.4.2", notes="Stable build.")
BAD_RELEASE = releases.Release(
    "1.5.0", error_rate=0.3, extra_latency_ms=300,
    notes="Faulty build: a new order-routing cache fails ~30% of API calls and adds ~300 ms.")
USERS = ("alice", "bob", "carol", "demo")
LOCKED_USERS = ("mallory",)
SEED_DAYS = 3
SEED_TRADES = 2500

CONFIG_TEMPLATE = """\
# The demo platform, made by `pitwatch demo init`. Paths are relative to this folder.
platform:
  app_url: http://127.0.0.1:{app_port}
  health_path: /health
  database: trading.db
  releases_dir: releases
  # Stops the app by its pid file, starts the `current` release, waits for /health.
  restart_command: {restart_command}
  # Deploys and rollbacks: HUP to the gunicorn master, new workers on `current`, the
  # old ones finish their requests; the socket stays open, so no request fails.
  reload_command: {reload_command}
  # A deploy or rollback is watched this long and rolled back on an SLO breach. The
  # demo keeps it short: a remediation rollback includes its watch, and a drill waits.
  deploy_watch: 30s
  deploy_window: halt          # `pitwatch deploy` outside CME Globex trading hours only
  # A restore swaps the database file: Litestream stops with the app and starts before
  # it, on the restored file (a Litestream left running replicates the replaced one).
  stop_command: {stop_command}
  start_command: {start_command}
  app_pid_file: run/app.pid
  redis_url: redis://127.0.0.1:{redis_port}/0   # started by `pitwatch demo`

trading_queries:
  - name: last_trade_timestamp_seconds
    help: Time of the newest trade (unix seconds).
    sql: select max(executed_at) from trades
  - name: open_positions
    help: Open positions per symbol.
    sql: select symbol, count(*) from positions where closed_at is null group by symbol
  - name: contracts_traded_last_hour
    help: Contracts traded in the last hour, per symbol.
    # INDEXED BY: without ANALYZE statistics SQLite would rather read all of
    # trades_symbol_time (it is in GROUP BY order) than SEARCH the last hour of trades_time.
    sql: >-
      select symbol, sum(quantity) from trades indexed by trades_time
      where executed_at > cast(strftime('%s', 'now') as real) - 3600 group by symbol

backups:
  snapshots_dir: backups/
  retention: 72h
  keep_min: 3
  litestream_config: litestream.yml
  restore_test_interval: 10m

security:
  auth_logs: [logs/auth.log]
  fail2ban: false
  certificates: [tls/cert.pem]
  firewall: "off"
  probe_interval: 1m

exporter:
  listen: 127.0.0.1:{exporter_port}
  quick_check_interval: 15s
  integrity_check_interval: 2m

remediation:
  listen: 127.0.0.1:{remediator_port}
  auth: bearer
  token_file: secrets/webhook.token
  journal: state/journal.db
  policy:                       # first matching rule wins; alerts carry `remediation`
    - name: rollback_bad_release      # 5xx error-rate alerts
      match: {{remediation: rollback}}
      action: rollback
      cooldown: 10m
      max_runs: 2
      window: 1h
      timeout: 3m
      market_hours: allow
      blocked_by: [{{remediation: restore}}]  # a damaged database is restored, never rolled back
    - name: restore_damaged_database  # corruption / failed integrity check
      match: {{remediation: restore}}
      action: restore
      cooldown: 30m
      max_runs: 1
      window: 6h
      timeout: 5m
      market_hours: allow
    - name: restart_app_down          # the app stopped answering
      match: {{remediation: restart}}
      action: restart
      cooldown: 5m
      max_runs: 3
      window: 1h
      timeout: 2m
      market_hours: allow

mail:
  smarthost: 127.0.0.1:{smtp_port}
  sender: pitwatch@localhost
  to: [oncall@localhost]
"""

LITESTREAM_TEMPLATE = """\
# Continuous replication of the demo database to a folder (made by `pitwatch demo init`).
addr: 127.0.0.1:{port}
dbs:
  - path: {database}
    replica:
      type: file
      path: {replica}
      sync-interval: 1s
"""


def init(directory: str | os.PathLike, echo: Callable[[str], None] | None = None) -> Path:
    """Create (or complete) a demo platform in ``directory``; return its pitwatch.yml."""
    say = echo or log.info
    root = Path(directory).resolve()
    for sub in ("backups", "replica", "logs", "run", "state", "releases"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    kept: list[str] = []

    def made(path: Path, create: Callable[[], None]) -> None:
        if path.exists() or path.is_symlink():
            kept.append(path.relative_to(root).as_posix())
        else:
            create()

    made(root / "secrets" / "webhook.token", lambda: _secret(root / "secrets" / "webhook.token"))
    made(root / "secrets" / "demo-user.password",
         lambda: _secret(root / "secrets" / "demo-user.password"))
    made(root / "trading.db", lambda: seed(root / "trading.db",
                                           (root / "secrets" / "demo-user.password").read_text().strip()))
    for rel in (GOOD_RELEASE, BAD_RELEASE):
        made(root / "releases" / rel.version / "release.json",
             lambda rel=rel: releases.write(root / "releases", rel))
    made(root / "releases" / "current",
         lambda: releases.point_current(root / "releases", GOOD_RELEASE.version))
    made(root / "logs" / "auth.log", lambda: (root / "logs" / "auth.log").touch())
    made(root / "tls" / "cert.pem", lambda: self_signed_cert(root / "tls"))
    made(root / "litestream.yml", lambda: (root / "litestream.yml").write_text(
        LITESTREAM_TEMPLATE.format(port=free_port(), database=root / "trading.db",
                                   replica=root / "replica")))
    config = root / "pitwatch.yml"
    made(config, lambda: config.write_text(_config_text(root, config)))
    if kept:
        say(f"{root}: kept existing {', '.join(kept)}")
    say(f"demo platform ready in {root} (config {config})")
    return config


def _config_text(root: Path, config: Path) -> str:
    ports = set()
    while len(ports) < 5:  # distinct ports, even if the OS hands one out twice
        ports.add(free_port())
    app_port, exporter_port, remediator_port, smtp_port, redis_port = sorted(ports)
    demo = [sys.executable, "-m", "pitwatch", "demo"]
    conf = ["--config", str(config)]

    def argv(*words: str) -> str:
        return "[" + ", ".join(_yaml_str(a) for a in [*demo, *words, *conf]) + "]"

    return CONFIG_TEMPLATE.format(
        app_port=app_port, exporter_port=exporter_port, remediator_port=remediator_port,
        smtp_port=smtp_port, redis_port=redis_port, restart_command=argv("restart-app"),
        reload_command=argv("reload-app"),
        stop_command=argv("stop-app", "--litestream"),
        start_command=argv("restart-app", "--litestream"))


def _yaml_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _secret(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")


def seed(path: Path, demo_password: str, now: float | None = None, trades: int = SEED_TRADES,
         rng: random.Random | None = None) -> None:
    """A WAL-mode database with instruments, users and a few days of trades."""
    from werkzeug.security import generate_password_hash

    now = time.time() if now is None else now
    rng = rng or random.Random()
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    conn = store.create(partial)
    conn.execute("pragma synchronous=off")  # a half-made seed is thrown away anyway
    try:
        conn.execute("begin")
        conn.executemany(
            "insert into instruments(symbol, name, exchange, tick, multiplier) values (?,?,?,?,?)",
            [(i.symbol, i.name, i.exchange, i.tick, i.multiplier) for i in INSTRUMENTS.values()])
        for user in USERS + LOCKED_USERS:
            password = demo_password if user == "demo" else secrets.token_urlsafe(16)
            conn.execute(
                "insert into users(username, password_hash, locked, created_at) values (?,?,?,?)",
                (user, generate_password_hash(password), int(user in LOCKED_USERS),
                 now - SEED_DAYS * 86400))
        conn.execute("commit")
        prices = {s: i.price for s, i in INSTRUMENTS.items()}
        # Index futures dominate the tape, as on a real small desk.
        weights = {"ES": 30, "NQ": 20, "CL": 12, "GC": 10, "ZN": 8, "6E": 6, "YM": 4,
                   "RTY": 3, "NG": 3, "SI": 2, "ZB": 1, "6J": 1}
        symbols, w = list(weights), list(weights.values())
        times = sorted(rng.uniform(now - SEED_DAYS * 86400, now - 30) for _ in range(trades))
        for at in times:
            symbol = rng.choices(symbols, w)[0]
            prices[symbol] *= 1 + rng.gauss(0, INSTRUMENTS[symbol].volatility)
            qty = rng.choice((1, 1, 1, 2, 2, 3, 5, 10)) if rng.random() > 0.03 else rng.randint(20, 50)
            store.record_trade(conn, rng.choice(USERS), symbol, rng.choice(("buy", "sell")),
                               qty, round_to_tick(symbol, prices[symbol]), executed_at=at)
    finally:
        conn.close()
    # The finished database takes its real name only when complete.
    for suffix in ("-wal", "-shm"):
        Path(str(partial) + suffix).unlink(missing_ok=True)
    os.replace(partial, path)


def self_signed_cert(folder: Path, days: int = 90) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pitwatch demo")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path = folder / "key.pem"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
