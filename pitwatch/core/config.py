"""The one config model: ``pitwatch.yml``, validated with pydantic.

``load(path)`` returns a :class:`Config` or raises :class:`ConfigError` whose
message is a single line naming the key and the problem.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> float:
    """'90s', '5m', '1h30m', '72h' or a number of seconds -> seconds (float)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 72h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and re.fullmatch(r"\d+(?:\.\d+)?", value.strip()):
        seconds = float(value)  # plain seconds, as environment variables carry them
    elif isinstance(value, str) and value and _DURATION.sub("", value.strip()) == "":
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(value))
    else:
        raise ValueError(f"invalid duration {value!r}: expected e.g. 30s, 5m, 72h")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
MetricName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$")]


def _listen(value: str) -> str:
    host, sep, port = str(value).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return str(value)


Listen = Annotated[str, BeforeValidator(_listen)]


class Model(BaseModel):
    # Unknown keys are typos until proven otherwise.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Platform(Model):
    app_url: str = "http://127.0.0.1:5000"
    health_path: str = "/health"
    database: Path
    # The app runs pitwatch.exporters.flask.instrument (its pitwatch_app_* metrics); false:
    # its request alerts and panels are listed as blind, and smoke requests stand in.
    instrumented: bool = True
    releases_dir: Path | None = None
    restart_command: list[str] = []
    app_pid_file: Path | None = None  # the app process, for the system collector
    redis_url: str | None = None
    # How a release is switched: release folders + `current` symlink, or compose .env tag.
    deploy: Literal["releases", "compose"] = "releases"
    compose_file: Path | None = None
    compose_env_file: Path | None = None
    compose_service: str = "app"
    # The .env variable holding the image tag, and how compose is invoked (argv prefix).
    compose_tag_variable: str = Field(default="APP_IMAGE_TAG", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    compose_command: list[str] = ["docker", "compose"]
    # Restore needs the app stopped while the file is swapped: stop_command + start_command
    # when given; otherwise the process in app_pid_file is sent TERM and restart_command starts it.
    stop_command: list[str] = []
    start_command: list[str] = []
    health_timeout: Duration = parse_duration("60s")
    # Graceful reload (argv): the app server keeps its listening socket and replaces its
    # workers, so a deploy or rollback fails no request (gunicorn: HUP to the master).
    # Deploys and rollbacks run it instead of restart_command when set.
    reload_command: list[str] = []
    # After a deploy or rollback the new release is watched this long against the SLO
    # thresholds (error ratio, latency) and rolled back on a breach; 0s: not watched.
    deploy_watch: Duration = parse_duration("2m")
    # When `pitwatch deploy` runs without --force: halt (only while CME Globex does not
    # trade: the daily halt, weekends, holidays), any (always), never (a freeze).
    deploy_window: Literal["halt", "any", "never"] = "halt"

    @field_validator("app_url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _compose_needs_env(self) -> "Platform":
        if self.deploy == "compose" and self.compose_env_file is None:
            raise ValueError("deploy: compose needs compose_env_file")
        return self


# Names of the per-query self-metrics, pitwatch_trading_<name>{query}.
TRADING_SELF_METRICS = ("query_success", "query_duration_seconds", "query_timestamp_seconds")


class TradingQuery(Model):
    """A business metric from SQL, sql_exporter style.

    Every column but the last becomes a label; the last is the value.
    The metric is ``pitwatch_trading_<name>``.
    """

    name: MetricName
    sql: str
    help: str = ""
    # The SQL runs in the background on this interval (default: exporter.trading_query_interval)
    # and is interrupted after ``timeout`` (default: exporter.trading_query_timeout); a scrape
    # only reads the last result, so its cost never grows with the database.
    interval: Duration | None = None
    timeout: Duration | None = None

    @field_validator("name")
    @classmethod
    def _not_a_self_metric(cls, v: str) -> str:
        # pitwatch_trading_query_* are the per-query self-metrics; a query of that name
        # would expose the same family twice.
        if v in TRADING_SELF_METRICS:
            raise ValueError(f"{v!r} is reserved for pitwatch's own per-query metrics")
        return v

    @field_validator("interval", "timeout")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError("must be longer than 0s")
        return v


class Backups(Model):
    snapshots_dir: Path
    retention: Duration = parse_duration("72h")
    keep_min: int = Field(default=3, ge=1)
    litestream_config: Path | None = None
    # The litestream program; default: PATH, then beside the running interpreter.
    litestream_binary: str | None = None
    restore_test_interval: Duration = parse_duration("1h")
    # Where the restore test and `backup verify` write their temporary copies (default:
    # TMPDIR), so the database and the snapshots may sit on read-only mounts.
    scratch_dir: Path | None = None
    # A restore keeps the files it replaced in quarantine/<time>/ beside the database:
    # at most the newest `quarantine_keep`, none older than `quarantine_max_age`, and
    # never fewer than the newest one.
    quarantine_keep: int = Field(default=3, ge=1)
    quarantine_max_age: Duration = parse_duration("7d")
    # After a restore from a platform with Litestream, a row written then must come back
    # out of the replica within this long; otherwise the restore is "degraded". 0s: no
    # proof (the restore says so), for a replica no restore can reach from here.
    replication_proof_timeout: Duration = parse_duration("60s")


class Security(Model):
    auth_logs: list[Path] = []
    # A line of an auth log that matches counts as one login failure.
    auth_failure_pattern: str = r"(?i)(failed password|authentication failure|login failed|invalid user)"
    fail2ban: bool = False
    certificates: list[Path] = []
    tls_endpoints: list[str] = []
    # Security headers are probed where users meet them: when a proxy (nginx, a TLS
    # terminator) adds them, this must be the proxy's URL, not the app's. Default: app_url.
    header_probe_url: str | None = None
    required_headers: list[str] = [
        "Strict-Transport-Security",
        "Content-Security-Policy",
        "X-Content-Type-Options",
        "X-Frame-Options",
        "Referrer-Policy",
    ]  # [] switches the header probe off
    # Listing the rule set (nft, iptables, ufw) and fail2ban-client need root; without it
    # the result is "needs root", never "inactive". auto with none of the tools installed
    # is "unknown" (no firewall_active sample), not "no firewall".
    firewall: Literal["auto", "nftables", "iptables", "ufw", "off"] = "auto"
    probe_interval: Duration = parse_duration("5m")

    @field_validator("auth_failure_pattern")
    @classmethod
    def _regex(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return v

    @field_validator("header_probe_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v


class SmokeUrl(Model):
    """One URL the exporter requests on a schedule, the way a user would (blackbox style)."""

    url: str
    # The `url` label of the smoke metrics; default: the URL without credentials.
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:/-]{1,64}$")
    method: Literal["GET", "HEAD"] = "GET"
    # Redirects are not followed: a 302 to a login page is not "up" unless listed here.
    expect_status: list[int] = Field(default=[200], min_length=1)
    timeout: Duration = parse_duration("5s")
    tls_verify: bool = True

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, v: list[int]) -> list[int]:
        bad = [s for s in v if not 100 <= s <= 599]
        if bad:
            raise ValueError(f"{bad[0]} is not an HTTP status")
        return v

    @field_validator("timeout")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be longer than 0s")
        return v


class Smoke(Model):
    # None: the app's health URL (platform.app_url + health_path); []: no smoke probe.
    urls: list[SmokeUrl] | None = None
    interval: Duration = parse_duration("15s")

    @field_validator("interval")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be longer than 0s")
        return v

    @field_validator("urls")
    @classmethod
    def _unique(cls, v: list[SmokeUrl] | None) -> list[SmokeUrl] | None:
        names = [u.name or u.url for u in v or []]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate smoke url or name {dupes[0]!r}")
        return v


# How old the newest trade may be, counted in CME Globex open time, per kind of activity.
ACTIVITY_MAX_TRADE_AGE = {"live": parse_duration("15m"), "daily": parse_duration("26h")}


class Trading(Model):
    # live: orders flow while the market is open; daily: trades arrive by a daily import;
    # none: no trade-age expectation (NoTradesWhileMarketOpen stays silent).
    activity: Literal["live", "daily", "none"] = "live"
    # Default per activity: 15m live, 26h daily. Counted in market-open time, so a
    # weekend or a holiday never makes the newest trade "too old".
    max_trade_age: Duration | None = None

    @field_validator("max_trade_age")
    @classmethod
    def _bounded(cls, v: float | None) -> float | None:
        if v is not None and not 60 <= v <= 7 * 86400:
            raise ValueError("must be between 1m and 7d")
        return v

    def expected_max_trade_age(self) -> float | None:
        """Seconds of market-open time the newest trade may be old; None for activity none."""
        if self.activity == "none":
            return None
        return self.max_trade_age or ACTIVITY_MAX_TRADE_AGE[self.activity]


class Exporter(Model):
    listen: Listen = "127.0.0.1:9108"
    integrity_check_interval: Duration = parse_duration("5m")
    # SQLite's quick_check reads every page: it runs in the background, never in a scrape.
    quick_check_interval: Duration = parse_duration("30s")
    # trading_queries run in the background, each on its own interval (a query may set
    # its own interval and timeout); a query still running at its timeout is interrupted.
    trading_query_interval: Duration = parse_duration("30s")
    trading_query_timeout: Duration = parse_duration("10s")

    @field_validator("trading_query_interval", "trading_query_timeout")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be longer than 0s")
        return v


class PolicyRule(Model):
    """Label matchers -> action, with the guards of ``pitwatch.remediation.policy``."""

    name: MetricName
    match: dict[str, str] = {}
    match_re: dict[str, str] = {}
    action: str  # rollback | restore | restart | a name from `actions`
    cooldown: Duration = parse_duration("15m")
    max_runs: int = Field(default=3, ge=1)
    window: Duration = parse_duration("1h")
    timeout: Duration = parse_duration("5m")
    market_hours: Literal["allow", "deny", "dry_run"] = "allow"
    dry_run: bool = False
    # Runs on one target never overlap (a rollback and a restore both touch the platform).
    target: str = "platform"
    # Label sets (exact matches): while an alert carrying one of them is firing, this rule
    # does not act (reason blocked_by). A rollback is blocked by a database fault.
    blocked_by: list[dict[str, str]] = []

    @field_validator("blocked_by")
    @classmethod
    def _label_sets(cls, v: list[dict[str, str]]) -> list[dict[str, str]]:
        # An empty set would match every alert: the rule would never act again.
        for i, labels in enumerate(v):
            if not labels:
                raise ValueError(f"[{i}] is empty: name at least one label")
        return v

    @field_validator("match_re")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        for label, pattern in v.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{label}: not a regular expression: {exc}") from None
        return v


BUILTIN_ACTIONS = ("rollback", "restore", "restart")


class Remediation(Model):
    listen: Listen = "127.0.0.1:9095"
    auth: Literal["bearer", "none"] = "bearer"
    token_file: Path | None = None
    # A second token that may only read (GET /, GET /actions): for people and dashboards.
    read_token_file: Path | None = None
    journal: Path
    # full: each acknowledged notification is fsynced (survives power loss); normal: survives
    # a crash of the receiver, not of the machine (SQLite WAL synchronous=NORMAL), faster.
    journal_synchronous: Literal["full", "normal"] = "full"
    # Notifications and the decisions that ran nothing are dropped after this; runs (and
    # the decisions that started them) are kept: they are the audit trail and the history.
    journal_retention: Duration = parse_duration("30d")
    redis_url: str | None = None
    workers: int = Field(default=2, ge=1, le=64)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Extra named actions (argv lists, never a shell) beside the built-in ones.
    actions: dict[str, list[str]] = {}
    policy: list[PolicyRule] = []
    # The newest row's time, for the RPO printed by `pitwatch restore` (unix seconds or ISO text).
    rpo_query: str | None = None

    @model_validator(mode="after")
    def _auth(self) -> "Remediation":
        if self.auth == "bearer" and self.token_file is None:
            raise ValueError("token_file is required unless auth: none is set")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        for i, rule in enumerate(self.policy):
            if rule.action not in BUILTIN_ACTIONS and rule.action not in self.actions:
                raise ValueError(f"policy[{i}].action: unknown action {rule.action!r} "
                                 f"(built-in: {', '.join(BUILTIN_ACTIONS)}, or define it under actions)")
        for name, argv in self.actions.items():
            if not argv:
                raise ValueError(f"actions.{name}: an empty argv")
        return self


class Mail(Model):
    smarthost: str = "127.0.0.1:25"
    sender: str = "pitwatch@localhost"
    to: list[str] = ["oncall@localhost"]
    username: str | None = None  # SMTP auth user; default: sender when a password_file is set
    password_file: Path | None = None
    require_tls: bool = False


class Chat(Model):
    """A Slack-compatible incoming webhook beside the mail; its URL is a secret in a file."""

    url_file: Path
    channel: str = "#trading-alerts"


class Heartbeat(Model):
    """An external dead man's switch pinged by the Watchdog alert (healthchecks-style URL)."""

    url: str
    interval: Duration = parse_duration("1m")


# cadvisor: container metrics where the platform runs in containers (no default target).
JOB_ROLES = ("app", "exporter", "litestream", "remediator", "alertmanager", "prometheus",
             "cadvisor")


class ScrapeJob(Model):
    name: str | None = None  # the job label rules select on; default: the role
    targets: list[str] = []  # host:port; default: derived from the rest of this file
    dns: bool = False  # each target's host resolves to every replica (DNS A records)
    scheme: Literal["http", "https"] = "http"
    metrics_path: str = "/metrics"


class Monitoring(Model):
    """How Prometheus reaches and names each job, and how Alertmanager and Grafana reach
    the rest: what `pitwatch render` writes. Defaults suit one machine."""

    scrape_interval: Duration = parse_duration("5s")
    evaluation_interval: Duration = parse_duration("5s")
    jobs: dict[Literal[JOB_ROLES], ScrapeJob] = {}  # type: ignore[valid-type]
    alertmanagers: list[str] = ["127.0.0.1:9093"]
    alertmanagers_dns: bool = False
    # Long-term storage (VictoriaMetrics, Mimir, Thanos Receive): Prometheus remote_write
    # entries as Prometheus spells them; external_labels tell several Prometheus apart.
    remote_write: list[dict] = []
    external_labels: dict[str, str] = {}
    prometheus_url: str = "http://127.0.0.1:9090"  # as Grafana reaches it
    remediator_url: str | None = None  # as Alertmanager reaches it; default: remediation.listen


class Links(Model):
    """External URLs as people reach them: rendered into rules, boards and mail."""

    runbook: str | None = None  # where alerts/runbook.md is published; anchors are appended
    grafana: str | None = None
    prometheus: str | None = None
    alertmanager: str | None = None
    # The remediator's status page as people reach it (TLS, a proxy); default: the
    # address Prometheus scrapes it at, which may be internal.
    remediator: str | None = None



class Slo(Model):
    """The platform's service level objectives and the operational thresholds derived
    from them; :mod:`pitwatch.core.slo` turns them into rules, verdicts and board steps.
    Objectives and shares are ratios in (0, 1), so 99.95 % is 0.9995."""

    availability: float = Field(default=0.9995, gt=0, lt=1)  # share of requests without a 5xx
    # A request slower than latency_threshold is "slow"; latency_objective of them must
    # not be (0.95 and 200ms: p95 < 200 ms). The threshold must be a bucket bound of
    # pitwatch_app_http_request_duration_seconds, so rules read it exactly.
    latency_threshold: Duration = parse_duration("200ms")
    latency_objective: float = Field(default=0.95, gt=0, lt=1)
    db_query_p99: Duration = parse_duration("50ms")
    app_memory_bytes: float = Field(default=1e9, gt=0)
    rpo: Duration = parse_duration("1h")
    rto: Duration = parse_duration("5m")
    # pitwatch check warns when a backup or replica reaches this share of the RPO.
    rpo_early_warning: float = Field(default=0.75, gt=0, lt=1)
    # AppHighErrorRate: the 5xx share over 30 s that rolls a release back.
    rollback_error_ratio: float = Field(default=0.05, gt=0, lt=1)
    volume_free_warning: float = Field(default=0.10, gt=0, lt=1)
    volume_free_critical: float = Field(default=0.05, gt=0, lt=1)
    wal_size_bytes: float = Field(default=64 * 1024 * 1024, gt=0)
    tls_warning: Duration = parse_duration("21d")
    tls_critical: Duration = parse_duration("7d")
    redis_ping: Duration = parse_duration("100ms")

    @field_validator("latency_threshold", "db_query_p99", "rpo", "rto", "tls_warning",
                     "tls_critical", "redis_ping")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be longer than 0s")
        return v

    @field_validator("latency_threshold")
    @classmethod
    def _a_bucket_bound(cls, v: float) -> float:
        from pitwatch.core.slo import HTTP_BUCKETS  # the module builds on this model

        if v not in HTTP_BUCKETS:
            raise ValueError(f"must be a request-duration bucket bound "
                             f"({', '.join(f'{b:g}s' for b in HTTP_BUCKETS)})")
        return v

    @model_validator(mode="after")
    def _critical_beyond_warning(self) -> "Slo":
        if self.volume_free_critical >= self.volume_free_warning:
            raise ValueError("volume_free_critical must be below volume_free_warning")
        if self.tls_critical >= self.tls_warning:
            raise ValueError("tls_critical must be shorter than tls_warning")
        return self


class Config(Model):
    platform: Platform
    trading_queries: list[TradingQuery] = []
    backups: Backups | None = None
    security: Security = Security()
    smoke: Smoke = Smoke()
    trading: Trading = Trading()
    exporter: Exporter = Exporter()
    remediation: Remediation | None = None
    mail: Mail | None = None
    chat: Chat | None = None
    heartbeat: Heartbeat | None = None
    monitoring: Monitoring = Monitoring()
    links: Links = Links()
    slo: Slo = Slo()
    # Where the file was read from: relative paths resolve against its folder.
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("trading_queries")
    @classmethod
    def _unique(cls, v: list[TradingQuery]) -> list[TradingQuery]:
        names = [q.name for q in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate query name {dupes[0]!r}")
        return v


class ConfigError(Exception):
    """A config problem, already phrased as one line for a person."""


# Secrets may come from the environment instead of the file.
ENV_OVERRIDES = {
    "PITWATCH_WEBHOOK_TOKEN_FILE": ("remediation", "token_file"),
    "PITWATCH_SMTP_PASSWORD_FILE": ("mail", "password_file"),
}


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _resolve(raw: dict, base: Path) -> None:
    """Make relative paths in known path fields relative to the config's folder."""

    def fix(section: dict | None, key: str) -> None:
        if isinstance(section, dict) and isinstance(section.get(key), str):
            p = Path(os.path.expanduser(section[key]))
            section[key] = str(p if p.is_absolute() else base / p)

    def fix_list(section: dict | None, key: str) -> None:
        if isinstance(section, dict) and isinstance(section.get(key), list):
            section[key] = [
                str(base / os.path.expanduser(p)) if isinstance(p, str) and not os.path.isabs(os.path.expanduser(p)) else p
                for p in section[key]
            ]

    plat = raw.get("platform")
    for key in ("database", "releases_dir", "app_pid_file", "compose_file", "compose_env_file"):
        fix(plat, key)
    for key in ("snapshots_dir", "litestream_config", "scratch_dir"):
        fix(raw.get("backups"), key)
    fix_list(raw.get("security"), "auth_logs")
    fix_list(raw.get("security"), "certificates")
    for key in ("token_file", "read_token_file", "journal", "tls_cert", "tls_key"):
        fix(raw.get("remediation"), key)
    fix(raw.get("mail"), "password_file")
    fix(raw.get("chat"), "url_file")


def parse(raw: object, base: Path | None = None, source: Path | None = None) -> Config:
    """Validate an already-parsed YAML document."""
    if not isinstance(raw, dict):
        raise ConfigError("the file must be a YAML mapping (key: value)")
    for env, (section, key) in ENV_OVERRIDES.items():
        if os.environ.get(env) and isinstance(raw.get(section), dict):
            raw[section][key] = os.environ[env]
    if base is not None:
        _resolve(raw, base)
    try:
        return Config.model_validate({**raw, "source": source})
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{_where(err['loc'])}: {msg}{more}") from None


def load(path: str | os.PathLike) -> Config:
    """Read and validate ``pitwatch.yml``; every failure is a one-line ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where}: {problem}") from None
    try:
        return parse(raw, base=path.resolve().parent, source=path.resolve())
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
