"""Traffic for the demo app: trades, charts, positions, logins (some failing).

It outlives the app: drills kill, restart and break it, so connection errors are
counted, reported once per outage, and retried with a short back-off.

Modes: besides the normal mix, a steady error mode makes an exact share of the requests
(every 200th for 0.5 %) ones the app answers 500 (a GET /api/positions carrying the
demo app's fault header), to burn the availability error budget at a known rate. It is
switched at runtime through ``run/traffic.json`` in the demo folder, which the running
generator re-reads every second: ``pitwatch slo burn DIR --error-ratio 0.005`` (or
``--off``) writes it.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from pitwatch.core.config import Config
from pitwatch.demo.app import FAULT_HEADER
from pitwatch.demo.instruments import INSTRUMENTS, round_to_tick

log = logging.getLogger("pitwatch.demo.traffic")

ACCOUNTS = ("alice", "bob", "carol", "demo")
SYMBOL_WEIGHTS = {"ES": 30, "NQ": 20, "CL": 12, "GC": 10, "ZN": 8, "6E": 6, "YM": 4,
                  "RTY": 3, "NG": 3, "SI": 2, "ZB": 1, "6J": 1}
TIMEFRAME_WEIGHTS = {"1m": 50, "5m": 25, "1h": 15, "1d": 10}
# (action, weight): a trading desk's mix, with a trickle of failed logins: about 8
# in 5 minutes at 5 req/s, well under the LoginFailureSpike threshold of 20.
MIX = (("trade", 45), ("chart", 25), ("positions", 20), ("login_fail", 0.5),
       ("login_ok", 3), ("health", 2))
# Documentation address ranges (RFC 5737): only ever written into a header.
ATTACKERS = ("203.0.113.7", "203.0.113.45", "198.51.100.23", "192.0.2.99")
MAX_IN_FLIGHT = 8
# Where a running generator reads its mode, relative to the demo folder.
MODE_FILE = Path("run") / "traffic.json"
MODE_POLL = 1.0  # seconds


def write_mode(root: Path, error_ratio: float) -> Path:
    """Switch the generator of the demo in ``root`` to ``error_ratio`` (0: normal mix)."""
    if not 0 <= error_ratio < 1:
        raise ValueError(f"error ratio {error_ratio:g} is not in [0, 1)")
    path = Path(root) / MODE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"error_ratio": error_ratio}) + "\n")
    tmp.replace(path)  # the generator never reads half a file
    return path


def read_mode(path: Path) -> float:
    """The error ratio a mode file asks for; 0 when there is none or it is unreadable."""
    try:
        ratio = float(json.loads(path.read_text()).get("error_ratio", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0.0
    return ratio if 0 <= ratio < 1 else 0.0


class Traffic:
    def __init__(self, base_url: str, rate: float = 5.0, demo_password: str | None = None,
                 rng: random.Random | None = None, timeout: float = 5.0,
                 mode_file: Path | None = None):
        self.base = base_url.rstrip("/")
        self.rate = max(rate, 0.1)
        self.demo_password = demo_password
        self.rng = rng or random.Random()
        self.timeout = timeout
        self.prices = {s: i.price for s, i in INSTRUMENTS.items()}
        self.stats: Counter = Counter()
        self.lock = threading.Lock()
        self.local = threading.local()
        self.stopping = threading.Event()
        self.down_since: float | None = None
        self.mode_file = mode_file
        self._mode_stamp: tuple | None = None
        self.error_ratio = 0.0
        self._sent = 0  # requests since the error ratio was set

    # -- one request each ---------------------------------------------------
    def _session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def _pick(self, weights: dict) -> str:
        with self.lock:
            return self.rng.choices(list(weights), list(weights.values()))[0]

    def _trade_body(self) -> dict:
        symbol = self._pick(SYMBOL_WEIGHTS)
        with self.lock:
            self.prices[symbol] *= 1 + self.rng.gauss(0, INSTRUMENTS[symbol].volatility)
            body = {"symbol": symbol, "side": self.rng.choice(("buy", "sell")),
                    "quantity": self.rng.choice((1, 1, 1, 2, 2, 3, 5, 10)),
                    "price": round_to_tick(symbol, self.prices[symbol]),
                    "account": self.rng.choice(ACCOUNTS)}
            if self.rng.random() < 0.02:  # a client bug now and then: expect a 400
                del body[self.rng.choice(("quantity", "price", "side"))]
        return body

    def request(self, action: str) -> int:
        s, t = self._session(), self.timeout
        if action == "trade":
            r = s.post(f"{self.base}/api/trades", json=self._trade_body(), timeout=t)
        elif action == "chart":
            r = s.get(f"{self.base}/api/chart/{self._pick(SYMBOL_WEIGHTS)}",
                      params={"timeframe": self._pick(TIMEFRAME_WEIGHTS)}, timeout=t)
        elif action == "positions":
            params = {"account": self.rng.choice(ACCOUNTS)} if self.rng.random() < 0.5 else {}
            r = s.get(f"{self.base}/api/positions", params=params, timeout=t)
        elif action == "login_ok" and self.demo_password:
            r = s.post(f"{self.base}/login", timeout=t,
                       json={"username": "demo", "password": self.demo_password})
        elif action in ("login_fail", "login_ok"):
            user = self.rng.choice(("alice", "bob", "mallory", "admin", "root", "trader9"))
            r = s.post(f"{self.base}/login", timeout=t,
                       headers={"X-Forwarded-For": self.rng.choice(ATTACKERS)},
                       json={"username": user, "password": "hunter2"})
        elif action == "fault":
            r = s.get(f"{self.base}/api/positions", headers={FAULT_HEADER: "500"}, timeout=t)
        else:
            r = s.get(f"{self.base}/health", timeout=t)
        return r.status_code

    # -- the error mode -----------------------------------------------------
    def set_error_ratio(self, ratio: float) -> None:
        if ratio != self.error_ratio:
            log.info("error mode: %s", f"{ratio:.4%} of requests fail" if ratio else "off")
            self.error_ratio, self._sent = ratio, 0

    def poll_mode(self) -> None:
        """Re-read the mode file when it changed (or appeared, or went away)."""
        if self.mode_file is None:
            return
        try:
            st = os.stat(self.mode_file)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if stamp != self._mode_stamp:
            self._mode_stamp = stamp
            self.set_error_ratio(read_mode(self.mode_file) if stamp else 0.0)

    def next_action(self, actions: list[str], weights: list[float]) -> str:
        """The mix's next action; in error mode exactly ``error_ratio`` of them fail
        (spread evenly, not at random, so every window sees the same share)."""
        self._sent += 1
        if self.error_ratio and (math.floor(self._sent * self.error_ratio)
                                 > math.floor((self._sent - 1) * self.error_ratio)):
            return "fault"
        return self.rng.choices(actions, weights)[0]

    def prime_prices(self) -> None:
        """Continue from the market's last prices rather than the catalogue's."""
        for symbol in INSTRUMENTS:
            try:
                bars = requests.get(f"{self.base}/api/chart/{symbol}", params={"timeframe": "1d"},
                                    timeout=self.timeout).json().get("bars") or []
            except (requests.RequestException, ValueError):
                return
            if bars:
                self.prices[symbol] = bars[-1]["close"]

    # -- the loop -----------------------------------------------------------
    def _one(self, action: str) -> None:
        try:
            status = self.request(action)
        except requests.RequestException as exc:
            with self.lock:
                self.stats["unreachable"] += 1
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    log.warning("app unreachable (%s); still trying", type(exc).__name__)
            time.sleep(min(1.0, 1 / self.rate))
            return
        with self.lock:
            self.stats[f"{status // 100}xx"] += 1
            if self.down_since is not None:
                log.warning("app reachable again after %.1fs", time.monotonic() - self.down_since)
                self.down_since = None

    def run(self, seconds: float | None = None, report_every: float = 30.0) -> Counter:
        end = None if seconds is None else time.monotonic() + seconds
        next_report = time.monotonic() + report_every
        next_poll = time.monotonic()
        actions, weights = [a for a, _ in MIX], [w for _, w in MIX]
        in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        with ThreadPoolExecutor(MAX_IN_FLIGHT, thread_name_prefix="traffic") as pool:
            while not self.stopping.is_set() and (end is None or time.monotonic() < end):
                # Exponential gaps: arrivals of independent users, not a metronome.
                self.stopping.wait(self.rng.expovariate(self.rate))
                # A slow or hung app must not pile up requests without bound.
                if time.monotonic() >= next_poll:
                    next_poll = time.monotonic() + MODE_POLL
                    self.poll_mode()
                if not in_flight.acquire(timeout=1):
                    continue
                action = self.next_action(actions, weights)
                fut = pool.submit(self._one, action)
                fut.add_done_callback(lambda _f: in_flight.release())
                if time.monotonic() >= next_report:
                    next_report += report_every
                    log.info("requests so far: %s", dict(sorted(self.stats.items())))
            self.stopping.set()
        return self.stats


def from_config(config: Config, rate: float = 5.0) -> Traffic:
    password, mode_file = None, None
    if config.source is not None:
        root = Path(config.source).parent
        pw_file = root / "secrets" / "demo-user.password"
        if pw_file.exists():
            password = pw_file.read_text().strip()
        mode_file = root / MODE_FILE
    return Traffic(config.platform.app_url, rate=rate, demo_password=password,
                   mode_file=mode_file)
