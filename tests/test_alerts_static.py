"""Alert rules, their promtool tests, the runbook and the Alertmanager routes, checked
with the real promtool and amtool, plus the house rules every alert must follow."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from pitwatch import render
from pitwatch.core.config import parse_duration
from support import rendered

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "alerts"
RULE_FILES = sorted((ALERTS / "rules").glob("*.yml"))
TEST_FILES = sorted((ALERTS / "tests").glob("*.yml"))
AM_CONFIG = ALERTS / "alertmanager.yml"
RUNBOOK = ALERTS / "runbook.md"

SEVERITIES = {"critical", "warning", "info"}
REMEDIATIONS = {"rollback", "restore", "restart"}
ANNOTATIONS = {"summary", "description", "value", "runbook_url"}
RUNBOOK_URL = "https://github.com/pitwatch/pitwatch/blob/main/alerts/runbook.md#"


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120)


def rules() -> list[dict]:
    return [r for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"]
            for r in g["rules"] if "alert" in r]


def alert_names() -> list[str]:
    return sorted({r["alert"] for r in rules()})


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def runbook_anchors() -> set[str]:
    anchors, fenced = set(), False
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6}\s+(.*)", line)):
            anchors.add(github_anchor(m.group(1)))
    return anchors


# --- the real tools ----------------------------------------------------------------

def test_promtool_check_rules():
    out = run("promtool", "check", "rules", *map(str, RULE_FILES))
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_check_config_loads_every_rule_file(tmp_path):
    # As the compose stack's render service writes it.
    render.write(rendered.compose_config(), tmp_path)
    out = run("promtool", "check", "config",
              str(tmp_path / "prometheus" / "prometheus.yml"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in out.stdout


def test_promtool_test_rules():
    out = run("promtool", "test", "rules", *map(str, TEST_FILES))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("SUCCESS") == len(TEST_FILES)


def test_amtool_check_config():
    out = run("amtool", "check-config", str(AM_CONFIG))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 templates" in out.stdout and "SUCCESS" in out.stdout.split("templates", 1)[1]


ROUTES = [
    # (labels, receivers in order) — every route of alertmanager.yml.
    ({"alertname": "Watchdog", "severity": "info"}, ["watchdog"]),
    ({"alertname": "AppHighErrorRate", "severity": "critical", "remediation": "rollback"},
     ["remediator", "mail-critical"]),
    ({"alertname": "DatabaseIntegrityCheckFailed", "severity": "critical", "remediation": "restore"},
     ["remediator", "mail-critical"]),
    ({"alertname": "AppDown", "severity": "critical", "remediation": "restart"},
     ["remediator", "mail-critical"]),
    ({"alertname": "BackupSnapshotTooOld", "severity": "critical"}, ["mail-critical"]),
    ({"alertname": "AppHighLatency", "severity": "warning"}, ["mail-warning"]),
    ({"alertname": "RemediationActionPerformed", "severity": "warning"}, ["mail-warning"]),
    ({"alertname": "RemediationDryRun", "severity": "info"}, ["blackhole"]),
    ({"alertname": "SomethingUnlabelled"}, ["blackhole"]),
    # An unknown remediation value is not the remediator's; it is still mailed.
    ({"alertname": "Odd", "severity": "critical", "remediation": "reboot"}, ["mail-critical"]),
]


@pytest.mark.parametrize("labels,receivers", ROUTES, ids=[r[0]["alertname"] for r in ROUTES])
def test_amtool_routes(labels, receivers):
    argv = ["amtool", "config", "routes", "test", f"--config.file={AM_CONFIG}",
            f"--verify.receivers={','.join(receivers)}", *(f"{k}={v}" for k, v in labels.items())]
    out = run(*argv)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == ",".join(receivers)


def test_every_receiver_but_chat_is_routed():
    config = yaml.safe_load(AM_CONFIG.read_text())
    routed = {config["route"]["receiver"]} | {r["receiver"] for r in config["route"]["routes"]}
    tested = {rcv for _, rcvs in ROUTES for rcv in rcvs}
    assert {r["name"] for r in config["receivers"]} - routed == {"chat"}  # off until enabled
    assert routed == tested


# --- what every alert must carry -----------------------------------------------------

@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_alert_labels_and_annotations(rule):
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"]), "CamelCase name"
    labels, ann = rule.get("labels", {}), rule.get("annotations", {})
    assert labels.get("severity") in SEVERITIES
    assert labels.get("remediation", "rollback") in REMEDIATIONS
    assert set(ann) == ANNOTATIONS
    assert "{{" not in ann["summary"], "summary is static"
    if rule["expr"].strip() != "vector(1)":  # the Watchdog has no value to tell
        assert "{{" in ann["description"], "description is templated"
    assert ann["runbook_url"].startswith(RUNBOOK_URL)
    assert ann["runbook_url"].split("#", 1)[1] in runbook_anchors(), "runbook anchor exists"
    assert ann["runbook_url"].split("#", 1)[1] == github_anchor(rule["alert"])


def test_remediation_alerts_fire_within_a_minute():
    """The shipped timings leave the rollback and the restore their budget."""
    prom = render.prometheus(rendered.compose_config())["global"]
    assert parse_duration(prom["scrape_interval"]) <= 5
    assert parse_duration(prom["evaluation_interval"]) <= 5
    am = yaml.safe_load(AM_CONFIG.read_text())["route"]["routes"]
    hook = next(r for r in am if r["receiver"] == "remediator")
    assert parse_duration(hook["group_wait"]) <= 5 and hook["continue"] is True
    acting = [r for r in rules() if "remediation" in r.get("labels", {})]
    assert {r["labels"]["remediation"] for r in acting} == REMEDIATIONS
    for r in acting:
        assert parse_duration(r.get("for", 0)) <= 30, r["alert"]
        assert "keep_firing_for" in r or r["labels"]["remediation"] == "restart", r["alert"]


def test_runbook_has_a_section_per_alert_and_no_stale_one():
    anchors = runbook_anchors()
    assert {github_anchor(a) for a in alert_names()} <= anchors
    sections = {github_anchor(h) for h in re.findall(r"^## (\w+)$", RUNBOOK.read_text(), re.M)}
    assert sections - {"timing", "routing"} == {github_anchor(a) for a in alert_names()}
    for name in alert_names():
        body = RUNBOOK.read_text().split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**Means:**", "**Confirm:**", "**Automatic:**", "**Person:**"):
            assert part in body, f"{name}: {part}"


def test_github_anchor():
    assert github_anchor("AppDown") == "appdown"
    assert github_anchor("Timing & budget") == "timing--budget"


# --- every alert is tested at its boundary ----------------------------------------------

def _cases() -> list[tuple[float, str, int, float]]:
    """(evaluation interval, group, eval time, number of expected alerts) per case."""
    out = []
    for f in TEST_FILES:
        doc = yaml.safe_load(f.read_text())
        interval = parse_duration(doc.get("evaluation_interval", "1m"))
        for group in doc["tests"]:
            for case in group.get("alert_rule_test", []):
                out.append((interval, group["name"], case["alertname"],
                            parse_duration(case["eval_time"]), case.get("exp_alerts") or []))
    return out


@pytest.mark.parametrize("name", alert_names())
def test_every_alert_has_a_boundary_test(name):
    cases = [c for c in _cases() if c[2] == name]
    assert cases, f"{name} has no promtool test"
    firing = [c for c in cases if c[4]]
    assert firing, f"{name} is never expected to fire"
    if any(r["expr"].strip() == "vector(1)" for r in rules() if r["alert"] == name):
        assert any(c[3] == 0 for c in firing), "an always-firing alert fires at once"
        return
    silent_before = {(c[1], c[3]) for c in cases if not c[4]}
    assert any((group, t - interval) in silent_before for interval, group, _, t, _ in firing), \
        f"{name}: no test is silent one evaluation before a firing one"


def test_expected_alerts_carry_the_rules_labels_and_every_annotation():
    by_name: dict[str, list[dict]] = {}
    for r in rules():
        by_name.setdefault(r["alert"], []).append(r)
    for _, group, name, _, expected in _cases():
        assert name in by_name, f"{group}: no rule named {name}"
        for exp in expected:
            assert set(exp.get("exp_annotations", {})) == ANNOTATIONS, f"{group}: {name}"
            labels = exp["exp_labels"]
            assert any(all(labels.get(k) == v for k, v in r.get("labels", {}).items())
                       for r in by_name[name]), f"{group}: {name} lacks its static labels"


# --- names agree with the catalogue --------------------------------------------------------

def test_rules_use_only_catalogued_metrics():
    catalogue = (ROOT / "docs" / "metrics.md").read_text()
    used = set()
    for r in rules():
        used |= set(re.findall(r"\b((?:pitwatch|trading|flask|litestream)_[a-z0-9_]+)", r["expr"]))
    assert used
    for metric in used:
        base = re.sub(r"_bucket$", "", metric)  # histograms are catalogued by their name
        assert f"`{base}`" in catalogue, f"{metric} is not in docs/metrics.md"


def test_scrape_jobs_match_the_catalogue_and_the_absent_alerts():
    catalogue = (ROOT / "docs" / "metrics.md").read_text()
    table = catalogue.split("## Scrape jobs", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", table, re.M))
    scraped = {j["job_name"] for j in render.prometheus(rendered.compose_config())["scrape_configs"]}
    absent = {re.search(r'job="(\w+)"', r["expr"]).group(1)
              for r in rules() if r["alert"] == "ScrapeJobAbsent"}
    assert documented == scraped == absent
