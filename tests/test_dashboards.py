"""The boards as code: generated JSON is committed and current, lint-clean, and its
PromQL parses (promtool on a generated rule file)."""
from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pitwatch.dashboards import build, common, lint, queries, slo, units

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "compose" / "grafana" / "dashboards"
PROVISIONING = ROOT / "compose" / "grafana" / "provisioning"
RULES = ROOT / "alerts" / "rules"


def pitwatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pitwatch", "dashboards", *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.fixture(scope="module")
def models() -> dict[str, dict]:
    return build.models()


# --- build and --check ----------------------------------------------------------------

def test_committed_json_is_what_the_code_generates():
    proc = pitwatch("build", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_build_is_stable_and_check_names_the_changed_file(tmp_path):
    first = pitwatch("build", "--out", str(tmp_path))
    assert first.returncode == 0, first.stderr
    written = {p.name: p.read_bytes() for p in tmp_path.glob("*.json")}
    assert sorted(written) == sorted(f"{name}.json" for name in build.BOARDS)
    for text in written.values():
        assert text.endswith(b"}\n")
    assert pitwatch("build", "--out", str(tmp_path)).returncode == 0
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.json")} == written

    (tmp_path / "backups.json").write_text((tmp_path / "backups.json").read_text()
                                           .replace("Backups", "Backupz", 1))
    (tmp_path / "system.json").unlink()
    proc = pitwatch("build", "--out", str(tmp_path), "--check")
    assert proc.returncode == 1
    assert "backups.json: differs" in proc.stderr
    assert "system.json: missing" in proc.stderr
    assert "overview.json" not in proc.stderr


def test_build_removes_a_stale_board_of_ours_only(tmp_path):
    (tmp_path / "old.json").write_text('{"uid": "pitwatch-old", "title": "gone"}\n')
    (tmp_path / "foreign.json").write_text('{"uid": "someone-else"}\n')
    assert pitwatch("build", "--out", str(tmp_path), "--check").returncode == 1
    build.write(tmp_path)
    assert not (tmp_path / "old.json").exists()
    assert (tmp_path / "foreign.json").exists()
    assert build.differences(tmp_path) == []


def test_json_is_sorted(models):
    text = build.render(models["overview"])
    keys = re.findall(r'^  "(\w+)":', text, flags=re.M)
    assert keys == sorted(keys) and "panels" in keys


# --- lint ------------------------------------------------------------------------------

def test_boards_are_lint_clean(models):
    assert lint.lint(models) == []
    assert pitwatch("lint").returncode == 0


def _first_stat(model: dict) -> dict:
    return next(p for p in model["panels"] if p["type"] == "stat")


def _rate_panel(model: dict) -> dict:
    return next(p for p in model["panels"] if "$__rate_interval" in p["targets"][0]["expr"])


MUTATIONS = {
    "no unit": (lambda m: _first_stat(m)["fieldConfig"]["defaults"].update(unit=""), "unit"),
    "no description": (lambda m: _first_stat(m).update(description=""), "no description"),
    "no title": (lambda m: _first_stat(m).update(title=" "), "no title"),
    "second datasource variable": (
        lambda m: m["templating"]["list"].append(dict(m["templating"]["list"][0], name="ds2")),
        "2 datasource variables"),
    "no datasource variable": (lambda m: m["templating"].update(list=[]),
                               "0 datasource variables"),
    "fixed rate window": (
        lambda m: _rate_panel(m)["targets"][0].update(
            expr=_rate_panel(m)["targets"][0]["expr"].replace("$__rate_interval", "5m")),
        "instead of [$__rate_interval]"),
    "hard-coded datasource": (lambda m: _first_stat(m).update(
        datasource={"type": "prometheus", "uid": "abc"}), "datasource is not"),
    "duplicate panel id": (lambda m: m["panels"][1].update(id=m["panels"][0]["id"]),
                           "not unique"),
    "overlap": (lambda m: m["panels"][1].update(gridPos=dict(m["panels"][0]["gridPos"])),
                "overlaps"),
    "off the grid": (lambda m: m["panels"][0]["gridPos"].update(x=20, w=8), "outside"),
    "no runbook link": (lambda m: m.update(links=[]), "runbook"),
}


@pytest.mark.parametrize("name", MUTATIONS)
def test_lint_catches(models, name):
    mutate, expected = MUTATIONS[name]
    broken = copy.deepcopy(models)
    mutate(broken["overview"])
    problems = lint.lint(broken)
    assert any(expected in p and p.startswith("pitwatch-overview") for p in problems), problems


def test_lint_catches_a_shared_uid(models):
    broken = copy.deepcopy(models)
    broken["system"]["uid"] = broken["overview"]["uid"]
    assert any("also used by overview" in p for p in lint.lint(broken))


@pytest.mark.parametrize("expr, problem", [
    ("sum(rate(x[$__rate_interval]))", None),
    ('sum(rate(x{a="[b]"}[$__rate_interval]))', None),
    ("avg_over_time(up[$__range])", None),
    ("irate(x[1m])", "instead of [$__rate_interval]"),
    ("increase(x{a=\"b\"}[$__range])", "instead of [$__rate_interval]"),
    ("max_over_time(x[10m])", "fixed [10m]"),
    ("max_over_time(rate(x[$__rate_interval])[1h:])", "cannot read"),
])
def test_range_rule(expr, problem):
    found = lint.range_problems(expr)
    if problem is None:
        assert found == []
    else:
        assert any(problem in p for p in found), found


def test_every_panel_has_a_known_unit_title_and_description(models):
    # The lint test above proves the rule works; this states the contract plainly.
    for model in models.values():
        for panel in model["panels"]:
            assert panel["fieldConfig"]["defaults"]["unit"] in units.KNOWN
            assert panel["title"] and panel["description"]


def test_overview_shows_what_the_platform_is_judged_by(models):
    exprs = " ".join(t["expr"] for p in models["overview"]["panels"] for t in p["targets"])
    for needle in ('slo:sli_error:ratio_rate1h{slo="availability"',
                   "pitwatch_app_http_request_duration_seconds_bucket",
                   'status=~"5.."', "pitwatch_app_trades_processed_total",
                   "pitwatch_trading_last_trade_timestamp_seconds",
                   "slo:db_query_duration_seconds:p99_rate5m",
                   "pitwatch_backup_snapshot_last_success_timestamp_seconds",
                   "pitwatch_backup_restore_test_duration_seconds",
                   "pitwatch_security_tls_cert_not_after_timestamp_seconds",
                   'ALERTS{alertstate="firing"',
                   "pitwatch_remediation_last_action_timestamp_seconds"):
        assert needle in exprs, needle


def test_remediation_board_covers_the_remediator(models):
    exprs = " ".join(t["expr"] for p in models["remediation"]["panels"] for t in p["targets"])
    for metric in ("pitwatch_remediation_notifications_received_total",
                   "pitwatch_remediation_decisions_total", "pitwatch_remediation_actions_total",
                   "pitwatch_remediation_action_duration_seconds_bucket",
                   "pitwatch_remediation_suppressions_total"):
        assert metric in exprs, metric


def test_metric_names_are_in_the_catalogue(models):
    catalogue = (ROOT / "docs" / "metrics.md").read_text()
    # The SLO recording rules are named in alerts/rules/slo.yml, not in the catalogue.
    recorded = {rule["record"] for path in RULES.glob("*.yml")
                for group in yaml.safe_load(path.read_text())["groups"]
                for rule in group["rules"] if "record" in rule}
    known = set(re.findall(r"`([a-z_:][a-z0-9_:]*)`", catalogue)) | {"up", "ALERTS"} | recorded
    names = set()
    for model in models.values():
        for panel in model["panels"]:
            for target in panel["targets"]:
                # Drop strings, matchers, ranges and label lists; what is left and not
                # called like a function is a metric name or a keyword.
                bare = re.sub(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]', "", target["expr"])
                bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
                              " ", bare)
                bare = re.sub(r"\b(sum|min|max|avg|count)\b", " ", bare)
                names |= set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", bare))
    words = {"or", "and", "unless", "bool", "offset"}
    metrics = {n for n in names - words if not re.fullmatch(r"[\d.e]+", n)}
    assert "pitwatch_sqlite_size_bytes" in metrics
    histograms = {re.sub(r"_bucket$", "", n) for n in metrics}
    assert histograms - known == set()


# --- PromQL parses -------------------------------------------------------------------

def _promtool(rule_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", "check", "rules", str(rule_file)],
                          capture_output=True, text=True, timeout=60)


def test_every_query_parses_with_promtool(tmp_path):
    items = queries.queries() + queries.annotation_queries()
    assert len(items) > 50
    assert {q.panel for q in items if q.panel_type == "annotation"} == \
        {"Critical alerts", "Remediation runs", "Releases"}
    assert all("$" not in queries.substitute(q.expr) for q in items)
    rule_file = tmp_path / "dashboards.yml"
    rule_file.write_text(yaml.safe_dump(queries.promtool_rule_groups(items)))
    proc = _promtool(rule_file)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(items)} rules found" in proc.stdout


def test_promtool_names_a_broken_query(tmp_path):
    items = queries.queries()
    unbalanced = "sum(rate(x[$__rate_interval])"
    broken = items[:3] + [queries.Query(**{**items[3].__dict__, "expr": unbalanced})]
    rule_file = tmp_path / "broken.yml"
    rule_file.write_text(yaml.safe_dump(queries.promtool_rule_groups(broken)))
    proc = _promtool(rule_file)
    assert proc.returncode != 0
    assert "dashboards" in proc.stdout + proc.stderr


def test_window_substitutes_grafana_variables():
    window = queries.Window(start=1000.0, end=1900.0, step=15.0, scrape_interval=15.0)
    assert window.rate_interval == 60          # four scrapes
    assert window.substitute("rate(x[$__rate_interval]) + avg_over_time(y[$__range])"
                             " + z[${__interval}]") == \
        "rate(x[60s]) + avg_over_time(y[900s]) + z[15s]"
    # The filters as Grafana sends "All"; other $ words are left alone.
    assert window.substitute('up{job =~ "$job", instance =~ "${instance}", a="$other"}') == \
        'up{job =~ ".*", instance =~ ".*", a="$other"}'
    coarse = queries.Window.last(86400, 15.0, now=100000.0)
    assert coarse.step == 864 and coarse.rate_interval == 879   # step + one scrape


# --- provisioning and links ---------------------------------------------------------

def test_provisioned_datasource_is_the_one_the_boards_default_to():
    doc = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (source,) = doc["datasources"]
    assert source["uid"] == common.DATASOURCE_UID
    assert source["name"] == common.DATASOURCE_NAME
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert source["isDefault"] is True


def _links(models: dict[str, dict]) -> list[str]:
    return [link["url"] for model in models.values()
            for panel in model["panels"] for link in panel.get("links", [])]


def test_board_links_point_at_boards_that_exist(models):
    uids = {model["uid"] for model in models.values()}
    targets = {re.match(r"/d/([\w-]+)", url).group(1) for url in _links(models)
               if url.startswith("/d/")}
    assert targets and targets <= uids
    assert {"pitwatch-trading", "pitwatch-backups", "pitwatch-remediation"} <= targets


def test_every_alert_threshold_links_to_its_runbook(models):
    """A panel drawing an alert's threshold links to that alert's runbook section."""
    checked = 0
    for model in models.values():
        for panel in model["panels"]:
            values = {s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]}
            exprs = " ".join(t["expr"] for t in panel["targets"])
            links = {link["url"] for link in panel.get("links", [])}
            for target in slo.ALL:
                if target.metric in exprs and target.value in values:
                    checked += 1
                    assert common.runbook_url(target.alert) in links, (model["title"],
                                                                        panel["title"])
    assert checked > 15


def test_the_mail_templates_board_link_opens_a_board(models):
    template = (ROOT / "alerts" / "templates" / "pitwatch.tmpl").read_text()
    # A link may pick its board by the alert (/d/{{ if … }}pitwatch-a{{ else }}pitwatch-b…).
    linked = {uid for line in template.splitlines() if "/d/" in line
              for uid in re.findall(rf"\b{common.UID_PREFIX}[\w-]+", line)}
    assert linked, "the mail template links to no board"
    assert set(linked) <= {model["uid"] for model in models.values()}


def test_runbook_links_name_real_alerts(models):
    anchors = {url.split("#", 1)[1] for url in _links(models) if url.startswith(common.RUNBOOK_URL)}
    assert len(anchors) > 10
    rule_files = sorted(RULES.glob("*.yml"))
    assert rule_files, "alerts/rules/ has no rule file to check the anchors against"
    alerts = {rule["alert"].lower() for f in rule_files
              for group in yaml.safe_load(f.read_text())["groups"]
              for rule in group["rules"] if "alert" in rule}
    assert anchors - alerts == set()
    runbook = ROOT / "alerts" / "runbook.md"
    headings = {h.strip().lower() for h in
                re.findall(r"^#+\s+`?(\w+)`?\s*$", runbook.read_text(), flags=re.M)}
    assert anchors - headings == set()


# --- how a snapshot prints values ------------------------------------------------------

@pytest.mark.parametrize("value, unit, text", [
    (0.2, units.SECONDS, "200 ms"), (0, units.SECONDS, "0 s"), (90, units.SECONDS, "1.5 min"),
    (21 * 86400, units.AGE, "21 d"), (0.05, units.PERCENT, "5 %"),
    (1.5 * 1024 ** 3, units.BYTES, "1.5 GiB"), (2860, units.OPS_PER_MINUTE, "2.86k ops/min"),
    (1, units.YES_NO, "Yes"), (0, units.UP_DOWN, "Off"), (14.4, units.MULTIPLE, "14.4 ×"),
    (float("nan"), units.SHORT, "NaN"),
])
def test_format_value(value, unit, text):
    assert units.format_value(value, unit) == text


def test_snapshot_applies_mappings_and_thresholds(models):
    from pitwatch.dashboards import snapshot

    firewall = next(p for p in models["security"]["panels"] if p["title"] == "Firewall")
    assert snapshot._text(-1, firewall) == "not checked"
    assert snapshot._text(1, firewall) == "On"
    assert snapshot._colour(1, firewall) == snapshot.COLOURS["green"]
    assert snapshot._colour(0, firewall) == snapshot.COLOURS["red"]
    tls = next(p for p in models["overview"]["panels"] if p["title"] == "TLS time left")
    colours = [snapshot._colour(days * 86400, tls) for days in (3, 10, 30)]
    assert colours == [snapshot.COLOURS[c] for c in ("red", "orange", "green")]


def test_snapshot_refuses_bad_input_clearly(tmp_path):
    proc = pitwatch("snapshot", "--prometheus", "http://127.0.0.1:9", "--out", str(tmp_path),
                    "--range", "5q")
    assert proc.returncode == 2 and "invalid duration '5q'" in proc.stderr
    proc = pitwatch("snapshot", "--prometheus", "http://127.0.0.1:9", "--out", str(tmp_path))
    assert proc.returncode == 1 and "127.0.0.1:9/api/v1/query_range" in proc.stderr
    assert "Traceback" not in proc.stderr
