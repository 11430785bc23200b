import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pitwatch.core import config
from pitwatch.core.config import ConfigError, parse_duration

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "pitwatch" / "pitwatch.example.yml"


def write(tmp_path, doc) -> Path:
    path = tmp_path / "pitwatch.yml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def test_example_is_valid_and_complete():
    cfg = config.load(EXAMPLE)
    assert cfg.backups.retention == 72 * 3600
    assert [r.action for r in cfg.remediation.policy] == ["rollback", "restore", "restart"]
    assert cfg.trading_queries[1].name == "open_positions"


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("5m", 300), ("1h30m", 5400),
                                          ("72h", 259200), (90, 90), ("250ms", 0.25), ("3600", 3600)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5 minutes", "m5", "-5s", True])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("mutate,expected", [
    (lambda d: d["backups"].update(retention="soon"), "backups.retention: invalid duration 'soon'"),
    (lambda d: d["platform"].update(databse="x.db"), "platform.databse: unknown key"),
    (lambda d: d["platform"].pop("database"), "platform.database: Field required"),
    (lambda d: d["remediation"]["policy"][1].update(market_hours="sometimes"),
     "remediation.policy[1].market_hours:"),
    (lambda d: d["exporter"].update(listen="9108"), "exporter.listen: expected HOST:PORT"),
    (lambda d: d["remediation"].pop("token_file"),
     "remediation: token_file is required unless auth: none is set"),
    (lambda d: d["trading_queries"].append(dict(d["trading_queries"][0])),
     "trading_queries: duplicate query name 'last_trade_timestamp_seconds'"),
    (lambda d: d["trading_queries"][0].update(name="Last-Trade"), "trading_queries[0].name:"),
    (lambda d: d["security"].update(auth_failure_pattern="(unclosed"),
     "security.auth_failure_pattern: not a regular expression"),
])
def test_bad_config_names_the_key(tmp_path, mutate, expected):
    doc = example()
    mutate(doc)
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path, doc))
    message = str(err.value)
    assert expected in message
    assert "\n" not in message


def test_auth_none_must_be_explicit(tmp_path):
    doc = example()
    doc["remediation"].pop("token_file")
    doc["remediation"]["auth"] = "none"
    assert config.load(write(tmp_path, doc)).remediation.token_file is None


def test_relative_paths_resolve_against_the_file(tmp_path):
    doc = example()
    doc["platform"]["database"] = "data/trading.db"
    doc["security"]["auth_logs"] = ["logs/auth.log", "/var/log/auth.log"]
    cfg = config.load(write(tmp_path, doc))
    assert cfg.platform.database == tmp_path / "data" / "trading.db"
    assert cfg.security.auth_logs == [tmp_path / "logs" / "auth.log", Path("/var/log/auth.log")]


def test_secret_file_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PITWATCH_WEBHOOK_TOKEN_FILE", "/run/secrets/token")
    assert config.load(write(tmp_path, example())).remediation.token_file == Path("/run/secrets/token")


@pytest.mark.parametrize("text,expected", [
    ("platform: [unclosed", "line 1"),
    ("- just\n- a list\n", "must be a YAML mapping"),
    ("remediation: {}\n", "platform: Field required"),
])
def test_unreadable_documents(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected):
        config.load(write(tmp_path, text))


def test_cli_reports_one_line_and_exit_2(tmp_path):
    doc = example()
    doc["backups"]["keep_min"] = 0
    path = write(tmp_path, doc)
    proc = subprocess.run([sys.executable, "-m", "pitwatch", "config", "check", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "backups.keep_min" in lines[0] and "Traceback" not in proc.stderr
