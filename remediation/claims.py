"""Who may act: episode claims and per-target locks.

Without Redis, one host: the journal's unique episode index is the claim, and a
target lock is an ``flock`` on ``<journal dir>/locks/<target>.lock`` (released by the
kernel if the receiver dies). With Redis, several receivers: the claim is
``SET NX`` of the episode key, the lock ``SET NX PX`` holding a fencing token (a
per-target counter, never below Redis's clock in ms), released only by its holder
(compare-and-delete); cooldown and max_runs are checked against a sorted set of every
replica's run times per rule. Either way the token reaches the action as
``PITWATCH_FENCING_TOKEN``, and remediation.fencing refuses a stale holder's changes.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
from pathlib import Path

EPISODE_TTL_MS = 30 * 86400 * 1000  # longer than any alert stays firing unnoticed

# Cooldown and max_runs across replicas: one sorted set of run times per rule.
# KEYS[1] runs of the rule; ARGV now, cooldown, window, max_runs, episode
_ADMIT = """
local now, cooldown, window, max_runs = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local keep = math.max(cooldown, window)
redis.call('zremrangebyscore', KEYS[1], '-inf', '(' .. (now - keep))
if redis.call('zscore', KEYS[1], ARGV[5]) then return 'ok' end
local last = redis.call('zrevrange', KEYS[1], 0, 0, 'withscores')
if last[2] and now - tonumber(last[2]) < cooldown then return 'cooldown' end
if redis.call('zcount', KEYS[1], now - window, '+inf') >= max_runs then return 'max_runs' end
redis.call('zadd', KEYS[1], now, ARGV[5])
redis.call('pexpire', KEYS[1], math.ceil(keep * 1000) + 1000)
return 'ok'
"""

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


# The next fencing token of a target, never below Redis's own clock in milliseconds: the
# tokens keep growing even after Redis restarted empty (remediation.fencing compares them
# with the highest one the platform has seen).
# KEYS[1] the target's fence counter
_NEXT_TOKEN = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = redis.call('incr', KEYS[1])
if n < now then
  redis.call('set', KEYS[1], now)
  n = now
end
return n
"""


class ClaimsUnavailable(Exception):
    """Redis is configured but cannot be asked: nobody acts (fail safe)."""


class Lock:
    def __init__(self, token: int, release):
        self.token = token
        self._release = release

    def release(self) -> None:
        if self._release:
            self._release()
            self._release = None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:100] or "_"


class LocalClaims:
    def __init__(self, lock_dir: Path):
        self.dir = Path(lock_dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    def ping(self) -> None:
        pass  # the lock folder is the journal's own disk, checked by the journal

    def claim_episode(self, episode: str, node: str) -> bool:
        return True  # the journal's unique index decides

    def admit(self, rule, now: float, episode: str) -> str | None:
        return None  # the journal's history already answered cooldown and max_runs

    def target_busy(self, target: str) -> bool:
        lock = self.lock(target, ttl=0)
        if lock is None:
            return True
        lock.release()
        return False

    def lock(self, target: str, ttl: float) -> Lock | None:
        path = self.dir / f"{_safe(target)}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        # The fencing token: a counter kept in the lock file, bumped under the lock.
        raw = os.pread(fd, 32, 0).strip()
        token = int(raw) + 1 if raw.isdigit() else 1
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(token).encode(), 0)

        def release() -> None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

        return Lock(token, release)


class RedisClaims:
    def __init__(self, url: str, prefix: str = "pitwatch:remediation:"):
        import redis

        self._errors = (redis.RedisError, OSError)
        self.r = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.prefix = prefix
        self._release = self.r.register_script(_RELEASE)
        self._admit = self.r.register_script(_ADMIT)
        self._next_token = self.r.register_script(_NEXT_TOKEN)

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{hashlib.sha256(name.encode()).hexdigest()[:32]}"

    def ping(self) -> None:
        """ClaimsUnavailable unless Redis answers: health and ``redis_up`` ask it."""
        try:
            self.r.ping()
        except self._errors as exc:
            raise ClaimsUnavailable(str(exc)) from exc

    def claim_episode(self, episode: str, node: str) -> bool:
        """True if this journal owns the episode (now, or from an earlier unanswered try)."""
        key = self._key("episode", episode)
        try:
            if self.r.set(key, node, nx=True, px=EPISODE_TTL_MS):
                return True
            owner = self.r.get(key)
        except self._errors as exc:
            raise ClaimsUnavailable(str(exc)) from exc
        # Our own claim whose journal commit failed (503, retried): still ours.
        return owner is not None and owner.decode() == node

    def admit(self, rule, now: float, episode: str) -> str | None:
        """Cooldown and max_runs over every replica's runs: None, or the reason not to act."""
        try:
            verdict = self._admit(keys=[self._key("runs", rule.name)],
                                  args=[now, rule.cooldown, rule.window, rule.max_runs, episode])
        except self._errors as exc:
            raise ClaimsUnavailable(str(exc)) from exc
        verdict = verdict.decode() if isinstance(verdict, bytes) else verdict
        return None if verdict == "ok" else verdict

    def target_busy(self, target: str) -> bool:
        try:
            return bool(self.r.exists(self._key("lock", target)))
        except self._errors as exc:
            raise ClaimsUnavailable(str(exc)) from exc

    def lock(self, target: str, ttl: float) -> Lock | None:
        key = self._key("lock", target)
        try:
            token = int(self._next_token(keys=[self._key("fence", target)]))
            value = str(token)
            if not self.r.set(key, value, nx=True, px=max(1, int(ttl * 1000))):
                return None
        except self._errors as exc:
            raise ClaimsUnavailable(str(exc)) from exc

        def release() -> None:
            try:
                self._release(keys=[key], args=[value])
            except self._errors:
                pass  # the lock expires by itself (PX)

        return Lock(token, release)
