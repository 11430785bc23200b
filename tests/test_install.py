"""The wheel, installed as a user installs it: outside the checkout, in a fresh venv,
with the pinned versions of constraints.txt, and run with a PATH that lacks the venv's
bin/ (cron, systemd, a shell without the venv activated).

Also: the ``app`` extra installs into an existing app's environment that pins older
versions of what pitwatch shares with it, and its instrumentation works there.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pitwatch.core.procs import Child, free_port, wait_http, wait_until

pytestmark = pytest.mark.slow  # builds a wheel and three virtual environments

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints.txt"
# Never part of the wheel: the checkout's own venv, build output, the demo's work folders.
NOT_SOURCES = {".git", ".venv", "build", "dist", "demo", "bench", ".pytest_cache"}
# What only the extras bring: the runtime (and so the image) holds none of it.
EXTRAS_ONLY = {"flask", "prometheus-flask-exporter", "gunicorn", "grafanalib", "matplotlib",
               "aiosmtpd", "requests", "pytest", "hypothesis"}
# An existing trading app's environment, older than constraints.txt everywhere.
APP_PINS = {"prometheus-client": "0.19.0", "flask": "3.0.0", "werkzeug": "3.0.1",
            "pydantic": "2.5.0", "requests": "2.31.0", "redis": "5.0.1", "psutil": "5.9.6"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


UNSET = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PITWATCH_CONFIG",
         "PROMETHEUS_MULTIPROC_DIR", "PITWATCH_WEBHOOK_TOKEN_FILE")


def clean_env() -> dict[str, str]:
    """The caller's environment without any venv: PATH holds neither this checkout's
    venv nor a litestream or pitwatch, and nothing points Python at the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    dirs = [d for d in env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
            if d and not (shutil.which("litestream", path=d) or shutil.which("pitwatch", path=d))]
    env["PATH"] = os.pathsep.join(dirs)
    env["PYTHONNOUSERSITE"] = "1"
    return env


class Venv:
    """A venv outside the checkout; every command runs in ``home`` with :func:`clean_env`."""

    def __init__(self, path: Path, home: Path):
        self.path, self.home = path, home
        self.bin = path / "bin"
        self.python = self.bin / "python"
        self.env = clean_env()

    def create(self) -> "Venv":
        subprocess.run([sys.executable, "-m", "venv", str(self.path)], check=True,
                       capture_output=True, timeout=120, cwd=self.home, env=self.env)
        return self

    def run(self, *argv, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                              timeout=timeout, cwd=self.home, env=self.env, **kw)

    def pip(self, *args, timeout: float = 600) -> subprocess.CompletedProcess:
        out = self.run(self.python, "-m", "pip", "--disable-pip-version-check", *args,
                       timeout=timeout)
        assert out.returncode == 0, f"pip {' '.join(map(str, args))}:\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
        return out

    def pitwatch(self, *args, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.run(self.bin / "pitwatch", *args, timeout=timeout)

    def installed(self) -> dict[str, str]:
        out = self.pip("list", "--format=json")
        return {norm(p["name"]): p["version"] for p in json.loads(out.stdout)}

    def child_env(self) -> dict[str, str]:
        # Child adds to os.environ: what clean_env() drops is set empty (Python ignores it).
        return {**self.env, **{k: "" for k in UNSET if k in os.environ}}

    def child(self, name: str, *args) -> Child:
        return Child(name, [self.bin / "pitwatch", *args], log=self.home / f"{name}.log",
                     env=self.child_env(), cwd=self.home)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of the working tree, built from a copy (the checkout gets no build/)."""
    tmp = tmp_path_factory.mktemp("wheel")

    def ignore(folder, names):
        top = Path(folder) == ROOT
        return [n for n in names if n == "__pycache__" or n.endswith(".egg-info")
                or (top and n in NOT_SOURCES)]

    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=ignore)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                          "-w", str(tmp / "dist"), str(src)],
                         capture_output=True, text=True, timeout=600, cwd=tmp)
    assert out.returncode == 0, out.stderr[-3000:]
    (built,) = (tmp / "dist").glob("pitwatch-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Venv:
    """The runtime: the wheel without extras, at the versions of constraints.txt."""
    home = tmp_path_factory.mktemp("home")
    v = Venv(home / "venv", home).create()
    v.pip("install", "-q", "-c", CONSTRAINTS, wheel)
    v.base_packages = v.installed()  # before any test adds an extra
    return v


def sqlite_rows(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute("select id, symbol from trades order by id").fetchall()
    finally:
        con.close()


def replicated_db(v: Venv, folder: Path, rows: int) -> tuple[Path, Path]:
    """A WAL-mode database with ``rows`` trades and a Litestream ``type: file`` replica
    holding all of them, written by the venv's own litestream."""
    folder.mkdir()
    db, ls_cfg = folder / "trading.db", folder / "litestream.yml"
    con = sqlite3.connect(db)
    con.execute("pragma journal_mode=wal")
    con.execute("create table trades (id integer primary key, symbol text, executed_at real)")
    con.executemany("insert into trades (symbol, executed_at) values (?, ?)",
                    [("ES", time.time())] * rows)
    con.commit()
    con.close()
    ls_cfg.write_text(yaml.safe_dump({
        "addr": f"127.0.0.1:{free_port()}",
        "dbs": [{"path": str(db), "replica": {"type": "file", "path": str(folder / "replica"),
                                              "sync-interval": "200ms"}}]}))
    litestream = v.bin / "litestream"
    probe = folder / "probe.db"

    def complete() -> bool:
        probe.unlink(missing_ok=True)
        out = v.run(litestream, "restore", "-config", ls_cfg, "-o", probe, db, timeout=30)
        return out.returncode == 0 and len(sqlite_rows(probe)) == rows

    with Child("litestream", [litestream, "replicate", "-config", ls_cfg],
               log=folder / "litestream.log", env=v.child_env(), cwd=folder):
        wait_until(complete, 60, interval=0.5, what="the litestream replica")
    probe.unlink()
    return db, ls_cfg


def write_config(path: Path, **sections) -> Path:
    doc = {"platform": {"database": "trading.db", "app_url": f"http://127.0.0.1:{free_port()}"},
           "security": {"firewall": "off"}}
    for name, section in sections.items():
        doc[name] = {**doc.get(name, {}), **section}
    path.write_text(yaml.safe_dump(doc))
    return path


def metrics(url: str) -> dict[tuple[str, tuple], float]:
    text = requests.get(url, timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


# -- the wheel -----------------------------------------------------------------------

def test_the_wheel_holds_every_shipped_file_under_pitwatch(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"pitwatch/pitwatch.example.yml", "pitwatch/alerts/alertmanager.yml",
                "pitwatch/alerts/runbook.md", "pitwatch/compose/Dockerfile",
                "pitwatch/compose/Dockerfile.dockerignore", "pitwatch/compose/.env.example",
                "pitwatch/compose/secrets/README.md"}
    for folder in ("alerts/rules", "alerts/tests", "alerts/templates", "compose",
                   "compose/grafana/dashboards", "compose/grafana/provisioning/dashboards",
                   "compose/grafana/provisioning/datasources"):
        files = [p for p in (ROOT / folder).iterdir()
                 if p.is_file() and p.suffix in (".yml", ".json", ".tmpl", ".md")]
        assert files, folder
        expected |= {f"pitwatch/{p.relative_to(ROOT)}" for p in files}
    assert sorted(expected - names) == []
    assert any(n.startswith("pitwatch/compose/grafana/dashboards/") and n.endswith(".json")
               for n in names)
    # One top-level package: nothing installs as `exporters`, `remediation`, ...
    assert {n.split("/")[0] for n in names} == {"pitwatch", wheel.name.split("-py3")[0] + ".dist-info"}
    # Secrets never ship, only the README that says which files to create.
    assert [n for n in names if "/secrets/" in n] == ["pitwatch/compose/secrets/README.md"]


# -- the runtime, outside the checkout ------------------------------------------------

def test_the_base_install_is_the_runtime_only(venv):
    assert not EXTRAS_ONLY & set(venv.base_packages), "the base install pulls in an extra's packages"
    pins = {norm(n): v for n, v in (line.split("==") for line in CONSTRAINTS.read_text().splitlines()
                                    if "==" in line and not line.startswith("#"))}
    for name, version in venv.base_packages.items():
        if name in pins:
            assert version == pins[name], f"{name} {version}, constraints.txt says {pins[name]}"
    assert (venv.bin / "litestream").exists()
    assert shutil.which("litestream", path=venv.env["PATH"]) is None


def test_the_command_runs_and_only_pitwatch_is_importable(venv):
    out = venv.pitwatch("--help")
    assert out.returncode == 0, out.stderr
    for command in ("exporter", "remediator", "restore", "files", "config", "dashboards"):
        assert re.search(rf"^\s+{command}\s", out.stdout, re.M), f"--help lists no {command}"
    out = venv.run(venv.python, "-c", "import pitwatch.exporters, pitwatch.remediation, "
                   "pitwatch.dashboards, pitwatch.alerts, pitwatch.compose, pitwatch.core.config; "
                   "print(pitwatch.exporters.__file__)")
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).is_relative_to(venv.path)
    for name in ("exporters", "remediation", "dashboards", "alerts", "compose"):
        out = venv.run(venv.python, "-c", f"import {name}")
        assert out.returncode == 1 and "ModuleNotFoundError" in out.stderr, f"`import {name}` works"


def test_config_check_accepts_a_valid_config_and_the_shipped_example(venv):
    cfg = write_config(venv.home / "check.yml",
                       backups={"snapshots_dir": "snapshots", "litestream_config": "ls.yml"},
                       remediation={"token_file": "token", "journal": "journal.db",
                                    "policy": [{"name": "r", "match": {"remediation": "restore"},
                                                "action": "restore"}]})
    out = venv.pitwatch("config", "check", cfg)
    assert out.returncode == 0, out.stderr
    assert "ok (platform, backups, remediation" in out.stdout
    example = venv.pitwatch("files", "path", "example").stdout.strip()
    assert Path(example).is_relative_to(venv.path)
    out = venv.pitwatch("config", "check", example)
    assert out.returncode == 0, out.stderr
    cfg.write_text(cfg.read_text().replace("backups:", "backups:\n  retention: soon"))
    out = venv.pitwatch("config", "check", cfg)
    assert out.returncode == 2 and "backups.retention: invalid duration" in out.stderr


def test_files_export_writes_the_shipped_files_and_never_overwrites(venv):
    out_dir = venv.home / "exported"
    out = venv.pitwatch("files", "export", out_dir)
    assert out.returncode == 0, out.stderr
    written = [Path(line) for line in out.stdout.splitlines()]
    assert len(written) > 30 and all(p.is_file() for p in written)
    for rel in ("alerts/alertmanager.yml", "alerts/runbook.md", "alerts/templates/pitwatch.tmpl",
                "compose/docker-compose.yml", "compose/grafana/dashboards/overview.json",
                "pitwatch.example.yml"):
        assert (out_dir / rel).read_bytes() == (ROOT / rel.replace(
            "pitwatch.example.yml", "pitwatch/pitwatch.example.yml")).read_bytes(), rel
    rules = sorted(p.name for p in (out_dir / "alerts" / "rules").glob("*.yml"))
    assert rules == sorted(p.name for p in (ROOT / "alerts" / "rules").glob("*.yml"))
    before = (out_dir / "alerts" / "alertmanager.yml").stat().st_mtime_ns
    out = venv.pitwatch("files", "export", out_dir)
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and "exists" in out.stderr
    assert (out_dir / "alerts" / "alertmanager.yml").stat().st_mtime_ns == before
    rules_dir = venv.pitwatch("files", "path", "alerts/rules").stdout.strip()
    assert Path(rules_dir).is_relative_to(venv.path) and Path(rules_dir, "backup.yml").is_file()


def test_exporter_serves_metrics_and_restore_tests_with_the_venvs_litestream(venv):
    site = venv.home / "exporter"
    db, ls_cfg = replicated_db(venv, site, rows=5)
    (site / "snapshots").mkdir()
    port = free_port()
    cfg = write_config(site / "pitwatch.yml", exporter={"listen": f"127.0.0.1:{port}"},
                       backups={"snapshots_dir": "snapshots", "litestream_config": str(ls_cfg)})
    with venv.child("exporter", "exporter", "--config", cfg) as child:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, proc=child)
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda: ("pitwatch_backup_restore_test_ok", ()) in metrics(url), 60,
                   interval=0.5, what="the first restore test")
        got = metrics(url)
        log = child.log.read_text()
    assert got[("pitwatch_collector_success", (("collector", "backup"),))] == 1.0, log
    assert got[("pitwatch_collector_success", (("collector", "database"),))] == 1.0, log
    assert got[("pitwatch_backup_restore_test_ok", ())] == 1.0, log
    assert ("pitwatch_backup_litestream_last_replica_write_timestamp_seconds", ()) in got
    assert "not on PATH" not in log


def test_remediator_answers_and_its_actions_use_the_venvs_python(venv):
    site = venv.home / "remediator"
    site.mkdir()
    (site / "token").write_text("s3cret\n")
    port = free_port()
    cfg = write_config(site / "pitwatch.yml", remediation={
        "listen": f"127.0.0.1:{port}", "token_file": "token", "journal": "journal.db",
        "policy": [{"name": "restore_damaged_database", "match": {"remediation": "restore"},
                    "action": "restore"}]})
    with venv.child("remediator", "remediator", "--config", cfg) as child:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, proc=child)
        assert requests.post(f"http://127.0.0.1:{port}/alerts", json={}, timeout=10).status_code == 401
    body = {"version": "4", "groupKey": "{}:{alertname=\"DatabaseCorrupt\"}", "status": "firing",
            "receiver": "remediator", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
            "truncatedAlerts": 0,
            "alerts": [{"status": "firing", "fingerprint": "0123456789abcdef",
                        "labels": {"alertname": "DatabaseCorrupt", "remediation": "restore"},
                        "annotations": {}, "startsAt": "2026-11-25T10:00:00Z",
                        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": ""}]}
    (site / "alert.json").write_text(json.dumps(body))
    out = venv.pitwatch("remediator", "replay", site / "alert.json", "--config", cfg, "--json")
    assert out.returncode == 0, out.stderr
    (decision,) = json.loads(out.stdout)
    assert decision["rule"] == "restore_damaged_database"
    # The receiver runs its actions with its own interpreter, whatever PATH says.
    assert decision["argv"][:3] == [str(venv.python), "-m", "pitwatch"]


def test_restore_from_litestream_with_a_path_lacking_the_venv(venv):
    site = venv.home / "restore"
    db, ls_cfg = replicated_db(venv, site, rows=7)
    expected = sqlite_rows(db)
    for sidecar in ("-wal", "-shm"):
        Path(f"{db}{sidecar}").unlink(missing_ok=True)
    db.write_bytes(b"this is not a database" * 500)  # the damage
    # No Litestream runs here after the restore, so nothing could prove replication.
    cfg = write_config(site / "pitwatch.yml", backups={"snapshots_dir": "snapshots",
                                                      "litestream_config": str(ls_cfg),
                                                      "replication_proof_timeout": "0s"})
    out = venv.pitwatch("restore", "--from", "litestream", "--no-restart", "--config", cfg)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "RTO" in out.stdout and "replication not proven" in out.stdout
    assert sqlite_rows(db) == expected and len(expected) == 7
    (quarantined,) = (site / "quarantine").glob("*/trading.db")
    assert quarantined.read_bytes().startswith(b"this is not a database")


def test_dashboards_extra_builds_the_shipped_boards(venv, wheel):
    """Last: it adds the ``dashboards`` extra to the shared venv."""
    assert "grafanalib" not in venv.base_packages
    without = venv.pitwatch("dashboards", "build", "--check")
    assert without.returncode == 2 and "Traceback" not in without.stderr
    assert "pip install 'pitwatch[dashboards]'" in without.stderr
    venv.pip("install", "-q", "-c", CONSTRAINTS, f"{wheel}[dashboards]")
    out_dir = venv.home / "boards"
    out = venv.pitwatch("dashboards", "build", "--out", out_dir)
    assert out.returncode == 0, out.stderr
    built = sorted(p.name for p in out_dir.glob("*.json"))
    shipped = ROOT / "compose" / "grafana" / "dashboards"
    assert built == sorted(p.name for p in shipped.glob("*.json")) and len(built) >= 7
    for name in built:
        assert (out_dir / name).read_bytes() == (shipped / name).read_bytes(), name
    out = venv.pitwatch("dashboards", "build", "--check")
    assert out.returncode == 0, out.stderr
    assert "up to date" in out.stdout


# -- the app extra, inside an existing app's environment ------------------------------

APP = """
import json, sys
from importlib.metadata import version
from flask import Flask
from pitwatch.exporters.flask import instrument

app = Flask("trading")

@app.route("/api/chart/<symbol>")
def chart(symbol):
    return {"symbol": symbol}

app.config["VERSION"] = "1.4.2"
metrics = instrument(app)  # the documented line
client = app.test_client()
for symbol in ("ES", "NQ", "ES"):
    assert client.get(f"/api/chart/{symbol}").status_code == 200
metrics.trade_processed("ES")
metrics.trade_processed("MNQ SEP25")
with metrics.db_query():
    pass
resp = client.get("/metrics")
names = ("flask", "werkzeug", "prometheus-client", "pydantic", "requests", "redis", "psutil")
print(json.dumps({"status": resp.status_code, "body": resp.get_data(as_text=True),
                  "versions": {n: version(n) for n in names}}))
"""

EXPORTER = """
import sys
from prometheus_client import generate_latest
from pitwatch.core import config
from pitwatch.exporters.registry import build_registry

registry = build_registry(config.load(sys.argv[1]))
registry.run_checks_once()
sys.stdout.write(generate_latest(registry).decode())
"""


def test_app_extra_installs_beside_an_apps_older_pins(wheel, tmp_path):
    v = Venv(tmp_path / "appvenv", tmp_path).create()
    pins = tmp_path / "app-pins.txt"
    pins.write_text("".join(f"{n}=={ver}\n" for n, ver in APP_PINS.items()))
    v.pip("install", "-q", "-r", pins)
    # The rest at the versions pitwatch is tested with; the app's pins (and what they
    # pin exactly, pydantic's core) win where both name a package.
    own = {*APP_PINS, "pydantic-core"}
    rest = tmp_path / "rest.txt"
    rest.write_text("".join(line + "\n" for line in CONSTRAINTS.read_text().splitlines()
                            if "==" in line and norm(line.split("==")[0]) not in own))
    v.pip("install", "-q", "-c", pins, "-c", rest, f"{wheel}[app]")
    installed = v.installed()
    assert {n: installed[n] for n in APP_PINS} == APP_PINS
    assert "prometheus-flask-exporter" in installed

    (tmp_path / "app.py").write_text(APP)
    out = v.run(v.python, tmp_path / "app.py")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] == 200 and result["versions"] == APP_PINS
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(result["body"]) for s in fam.samples}
    get_200 = (("method", "GET"), ("status", "200"))
    assert samples[("pitwatch_app_http_request_total", get_200)] == 3.0
    assert samples[("pitwatch_app_http_request_duration_seconds_count",
                    (*get_200, ("url_rule", "/api/chart/<symbol>")))] == 3.0
    assert samples[("pitwatch_app_build_info", (("version", "1.4.2"),))] == 1.0
    assert samples[("pitwatch_app_trades_processed_total", (("instrument", "ES"),))] == 1.0
    assert samples[("pitwatch_app_trades_processed_total", (("instrument", "MNQ"),))] == 1.0
    assert samples[("pitwatch_app_trades_processed_total", (("instrument", "other"),))] == 0.0
    assert samples[("pitwatch_app_db_query_duration_seconds_count", ())] == 1.0

    # The config (pydantic 2.5) and the collectors (prometheus_client 0.19, psutil 5.9)
    # work with the app's versions too.
    db = tmp_path / "trading.db"
    con = sqlite3.connect(db)
    con.execute("create table trades (id integer primary key, symbol text)")
    con.commit()
    con.close()
    cfg = write_config(tmp_path / "pitwatch.yml", backups={"snapshots_dir": "snapshots"})
    (tmp_path / "snapshots").mkdir()
    out = v.pitwatch("config", "check", cfg)
    assert out.returncode == 0, out.stderr
    (tmp_path / "exporter.py").write_text(EXPORTER)
    out = v.run(v.python, tmp_path / "exporter.py", cfg)
    assert out.returncode == 0, out.stderr
    families = {f.name: f for f in text_string_to_metric_families(out.stdout)}
    success = {s.labels["collector"]: s.value for s in families["pitwatch_collector_success"].samples}
    assert success["database"] == 1.0 and success["backup"] == 1.0 and success["system"] == 1.0


# -- the image installs the same way ---------------------------------------------------

def test_the_image_installs_every_packaged_folder_with_the_constraints():
    import tomllib

    text = (ROOT / "compose" / "Dockerfile").read_text()
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"pitwatch", *setuptools["package-dir"].values()}
    ignored = (ROOT / "compose" / "Dockerfile.dockerignore").read_text().split()
    for folder in sorted(folders):
        assert re.search(rf"^COPY {folder} \./{folder}$", text, re.M), f"the image misses {folder}/"
        assert folder not in ignored
    assert re.search(r"^COPY pyproject\.toml README\.md constraints\.txt \./$", text, re.M)
    # The base install, pinned: no extra (the remediator in the stack serves plain HTTP).
    (install,) = re.findall(r"pip install ([^&\n]*)", text)
    assert install.split() == ["-c", "/src/constraints.txt", "/src"]
    stack = yaml.safe_load((ROOT / "compose" / "pitwatch.yml").read_text())
    assert not stack["remediation"].get("tls_cert"), "TLS in the stack needs the tls extra in the image"
