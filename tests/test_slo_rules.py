"""`pitwatch slo rules`: the shipped alerts/rules/slo.yml is the generator's output for
the stated SLOs; a config's slo: section changes the generated rules, and a bad value
stops with one line naming the key; `pitwatch render` passes the file on with the
platform's job names."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pitwatch import render
from pitwatch.core import config, slo
from support import rendered

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "alerts" / "rules" / "slo.yml"


def pitwatch(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pitwatch", *argv], capture_output=True,
                          text=True, timeout=120)


def promtool_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=120)


def write_config(tmp_path: Path, **sections) -> Path:
    path = tmp_path / "pitwatch.yml"
    path.write_text(yaml.safe_dump({"platform": {"database": str(tmp_path / "t.db")},
                                    **sections}))
    return path


def test_the_shipped_file_is_the_generators_output():
    assert SHIPPED.read_text() == slo.rules_yaml(slo.spec()), \
        "alerts/rules/slo.yml differs: run `pitwatch slo rules` and commit the result"
    proc = pitwatch("slo", "rules", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_names_a_file_that_differs(tmp_path):
    out = tmp_path / "slo.yml"
    assert pitwatch("slo", "rules", "--out", str(out)).returncode == 0
    assert out.read_text() == SHIPPED.read_text()
    out.write_text(out.read_text().replace("> 14.4", "> 14"))
    proc = pitwatch("slo", "rules", "--check", "--out", str(out))
    assert proc.returncode == 1 and f"{out}: differs" in proc.stderr


def test_a_config_moves_the_objectives(tmp_path):
    cfg = write_config(tmp_path, slo={"availability": 0.999, "latency_threshold": "500ms",
                                      "latency_objective": 0.9})
    proc = pitwatch("slo", "rules", "--config", str(cfg), "--out", "-")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "vector(0.999)" in text and "vector(0.9)" in text
    assert '/ 0.001 > 14.4' in text and '/ 0.1 > 6' in text
    assert 'le="0.5"' in text and 'le="0.2"' not in text
    (tmp_path / "slo.yml").write_text(text)
    check = promtool_check(tmp_path / "slo.yml")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 29 rules found" in check.stdout


@pytest.mark.parametrize("section,message", [
    ({"availabilty": 0.999}, "slo.availabilty: unknown key"),
    ({"availability": 1.5}, "slo.availability: Input should be less than 1"),
    ({"latency_objective": 0}, "slo.latency_objective: Input should be greater than 0"),
    ({"latency_threshold": "300ms"}, "slo.latency_threshold: must be a request-duration bucket"),
    ({"rpo": "0s"}, "slo.rpo: must be longer than 0s"),
    ({"volume_free_critical": 0.2}, "slo: volume_free_critical must be below volume_free_warning"),
    ({"tls_critical": "30d"}, "slo: tls_critical must be shorter than tls_warning"),
])
def test_a_bad_value_stops_with_one_line_naming_it(tmp_path, section, message):
    with pytest.raises(config.ConfigError) as err:
        config.load(write_config(tmp_path, slo=section))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_defaults_are_the_stated_targets():
    t = config.parse({"platform": {"database": "/x.db"}}).slo
    assert (t.availability, t.latency_threshold, t.latency_objective, t.db_query_p99,
            t.app_memory_bytes, t.rpo, t.rto) == (0.9995, 0.2, 0.95, 0.05, 1e9, 3600, 300)


def test_render_passes_it_on_with_the_platforms_job_names(tmp_path):
    cfg = config.parse({"platform": {"database": str(tmp_path / "t.db")},
                        "monitoring": {"jobs": {"app": {"name": "trading"}}}})
    text = render.rule_files(cfg)["slo.yml"]
    assert 'job="app"' not in text
    assert text.count('job="trading"') == SHIPPED.read_text().count('job="app"') > 0
    (tmp_path / "slo.yml").write_text(text)
    check = promtool_check(tmp_path / "slo.yml")
    assert check.returncode == 0, check.stdout + check.stderr
    # The compose stack renders it with the shipped names.
    assert rendered.compose_files()["prometheus/rules/slo.yml"] == SHIPPED.read_text()


def test_show_lists_objectives_and_thresholds(tmp_path):
    proc = pitwatch("slo", "show", "--config", str(write_config(tmp_path, slo={"rpo": "2h"})))
    assert proc.returncode == 0, proc.stderr
    assert "availability: 99.95 % of API requests" in proc.stdout
    assert "RPO: the newest backup is at most 2 h old (BackupSnapshotTooOld, critical)" \
        in proc.stdout
