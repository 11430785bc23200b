"""Generated bodies and headers against a real receiver: never a 5xx, never an action,
and every acknowledged notification is in the journal."""
from __future__ import annotations

import json

import pytest
import requests
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pitwatch.core.procs import free_port
from support.remediation import PY, TOKEN, Receiver, alert, journal_rows, notification, remediation_config

HOSTILE = ["$(touch pwned)", "; rm -rf /", "`id`", "a\nb", "\x00", "\ud7ff", "'\"", "x" * 5000]
text = st.one_of(st.text(max_size=30), st.sampled_from(HOSTILE))
labels = st.dictionaries(st.one_of(st.sampled_from(["alertname", "remediation", "severity"]), text),
                         text, max_size=5)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20)


@st.composite
def alerts(draw):
    a = alert(fingerprint=draw(st.text("0123456789abcdef", min_size=1, max_size=16)),
              status=draw(st.sampled_from(["firing", "resolved"])))
    a["labels"] = draw(labels)
    a["annotations"] = draw(labels)
    for key in draw(st.lists(st.sampled_from(list(a)), max_size=2, unique=True)):
        if draw(st.booleans()):
            del a[key]
        else:
            a[key] = draw(json_value)
    return a


@st.composite
def bodies(draw):
    kind = draw(st.sampled_from(["shaped", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_value)).encode()
    body = notification(draw(st.lists(alerts(), max_size=4)), status="firing")
    for key in draw(st.lists(st.sampled_from(list(body)), max_size=2)):
        body[key] = draw(json_value)
    return json.dumps(body).encode()


auth = st.one_of(st.just(f"Bearer {TOKEN}"), st.just(TOKEN), st.just("Bearer"),
                 # what an HTTP client can send: printable, no surrounding blanks
                 st.from_regex(r"\A[!-~]([ -~]{0,38}[!-~])?\Z"),
                 st.from_regex(r"\A[!-~]{1,40}\Z").map(lambda t: "Bearer " + t),
                 st.none())


@pytest.fixture(scope="module")
def receiver(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    marker = root / "ran"
    cfg = {"platform": {"database": str(root / "trading.db")},
           "remediation": remediation_config(
               root, port, actions={"touch": [PY, "-c", f"open({str(marker)!r}, 'a')"]},
               # A label the generators never produce: nothing may ever run.
               policy=[{"name": "canary", "action": "touch",
                        "match": {"zz_canary_label_never_generated": "fire"}}])}
    (root / "pitwatch.yml").write_text(yaml.safe_dump(cfg))
    r = Receiver(root / "pitwatch.yml", port, root / "remediator.log")
    r.marker, r.journal, r.accepted = marker, root / "journal" / "journal.db", 0
    yield r
    r.stop()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies(), authorization=auth,
       content_type=st.sampled_from(["application/json", "text/plain", "", "application/x-www-form-urlencoded"]))
def test_generated_requests_never_5xx(receiver, body, authorization, content_type):
    headers = {"Content-Type": content_type}
    if authorization is not None:
        headers["Authorization"] = authorization
    resp = requests.post(receiver.url + "/alerts", data=body, headers=headers, timeout=30)
    assert resp.status_code in (200, 400, 401), (resp.status_code, resp.text, body[:200])
    if resp.status_code == 400:
        assert resp.json()["field"]
    if resp.status_code == 200:
        receiver.accepted += 1
        assert not resp.json()["runs"]
    assert journal_rows(receiver.journal, "select count(*) from notifications")[0][0] == receiver.accepted


def test_nothing_ran(receiver):
    # Valid notifications of its own, hostile values in every label, so that this holds
    # whether or not the generated requests ran before it.
    for i, hostile in enumerate(HOSTILE):
        labels = {"remediation": hostile, "severity": hostile, hostile: "fire"}
        body = notification([{**alert(fingerprint=f"{i:x}"), "labels": labels}])
        resp = requests.post(receiver.url + "/alerts", json=body,
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert resp.status_code == 200, (hostile, resp.text)
        receiver.accepted += 1
        assert not resp.json()["runs"]
    assert journal_rows(receiver.journal, "select count(*) from notifications")[0][0] == receiver.accepted
    assert journal_rows(receiver.journal, "select count(*) from runs") == [(0,)]
    assert not receiver.marker.exists()


def _post(receiver, raw: bytes):
    return requests.post(receiver.url + "/alerts", data=raw, timeout=30,
                         headers={"Authorization": f"Bearer {TOKEN}",
                                  "Content-Type": "application/json"})


def _shaped(inner: str) -> bytes:
    """A valid notification with ``inner`` as the value of an unknown field."""
    body = json.dumps(notification([alert(fingerprint="f00d")]))
    return (body[:-1] + ', "extra": ' + inner + "}").encode()


PATHOLOGICAL = {
    "nesting 5000 deep": (b"[" * 5000 + b"]" * 5000, "nested deeper"),
    "objects 5000 deep": (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested deeper"),
    "nesting inside a notification": (_shaped("[" * 100 + "]" * 100), "nested deeper"),
    "an integer of 5000 digits": (_shaped("1" * 5000), "number too long"),
    "a duplicate key": (b'{"version": "4", "version": "4"}', "duplicate key"),
    "a duplicated alert field": (json.dumps(notification([alert()])).replace(
        '"status": "firing"', '"status": "firing", "status": "resolved"', 1).encode(),
        "duplicate key"),
    "invalid UTF-8": (b'{"version": "4", "receiver": "\xff\xfe"}', "not UTF-8"),
    "a lone surrogate in a label": (json.dumps(notification([alert(x="\ud800")])).encode(),
                                    "not valid Unicode"),
}


@pytest.mark.parametrize("case", list(PATHOLOGICAL), ids=list(PATHOLOGICAL))
def test_pathological_bodies_get_a_400_naming_the_problem(receiver, case):
    raw, problem = PATHOLOGICAL[case]
    before = journal_rows(receiver.journal, "select count(*) from notifications")[0][0]
    resp = _post(receiver, raw)
    assert resp.status_code == 400, (resp.status_code, resp.text[:300])
    assert problem in resp.json()["error"] and resp.json()["field"]
    assert journal_rows(receiver.journal, "select count(*) from notifications")[0][0] == before


def test_big_floats_and_shallow_nesting_are_accepted_and_journalled(receiver):
    # Depth within the limit, and floats Python reads as inf, are valid JSON: kept.
    for inner in ("[" * 20 + "]" * 20, "1e999", "-1e999", "1" * 4000):
        resp = _post(receiver, _shaped(inner))
        assert resp.status_code == 200, (inner[:30], resp.text)
        receiver.accepted += 1
        assert not resp.json()["runs"]
    assert journal_rows(receiver.journal, "select count(*) from notifications")[0][0] == receiver.accepted


nested = st.integers(min_value=1, max_value=3000).flatmap(
    lambda n: st.sampled_from([("[" * n + "]" * n), ('{"k":' * n + "0" + "}" * n),
                               ("[" * n), ('"' + "[" * n + '"')]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(inner=nested, where=st.sampled_from(["body", "field"]),
       dup=st.booleans(), number=st.one_of(st.none(), st.integers(min_value=1, max_value=9000)))
def test_generated_pathological_bodies_never_5xx_and_nothing_accepted_is_lost(receiver, inner, where,
                                                                            dup, number):
    raw = inner.encode() if where == "body" else _shaped(inner)
    if number is not None:
        raw = _shaped("9" * number)
    if dup:
        raw = raw.replace(b'"receiver":', b'"receiver": "x", "receiver":', 1)
    resp = _post(receiver, raw)
    assert resp.status_code in (200, 400), (resp.status_code, resp.text[:300])
    if resp.status_code == 200:
        receiver.accepted += 1
    else:
        assert resp.json()["field"]
    assert journal_rows(receiver.journal, "select count(*) from notifications")[0][0] == receiver.accepted
