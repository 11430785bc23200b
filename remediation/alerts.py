"""Alertmanager webhook notifications (version "4"), checked field by field.

:func:`parse` turns a request body into a :class:`Notification` or raises
:class:`BadNotification` naming the first field that is wrong. Fields this code does
not know are ignored: newer Alertmanagers add some.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime

from pitwatch.core.times import parse_time

STATUSES = ("firing", "resolved")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# A webhook body nests five levels; newer fields add a few. json.loads recurses once per
# level and a 5,000-deep body would end in RecursionError (a 500): refused before.
MAX_DEPTH = 32
_TOKEN = re.compile(r'\\.|["\[\]{}]')  # an escape pair, a quote or a bracket
# RFC 3339 as Alertmanager writes it; Go may print up to nine fractional digits.


class BadNotification(ValueError):
    def __init__(self, field_name: str, problem: str):
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name
        self.problem = problem


@dataclass(frozen=True)
class Alert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    ends_at: str
    fingerprint: str
    generator_url: str = ""

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    def to_dict(self) -> dict:
        """The Alertmanager spelling, as handed to actions in PITWATCH_ALERT_FILE."""
        return {"status": self.status, "labels": self.labels, "annotations": self.annotations,
                "startsAt": self.starts_at, "endsAt": self.ends_at,
                "fingerprint": self.fingerprint, "generatorURL": self.generator_url}


@dataclass(frozen=True)
class Notification:
    receiver: str
    status: str
    group_key: str
    alerts: list[Alert]
    group_labels: dict[str, str] = field(default_factory=dict)
    common_labels: dict[str, str] = field(default_factory=dict)
    external_url: str = ""
    truncated_alerts: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _unicode(value: str, where: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadNotification(where, "not valid Unicode") from None


def _check_unicode(n: "Notification") -> None:
    """Lone surrogates ("\\ud800") cannot be stored or put in an environment: refuse them,
    naming the field. Only called when the body holds such an escape at all."""
    for key, value in (("receiver", n.receiver), ("groupKey", n.group_key),
                       ("externalURL", n.external_url)):
        _unicode(value, key)
    for key, labels in (("groupLabels", n.group_labels), ("commonLabels", n.common_labels)):
        for k, v in labels.items():
            _unicode(k, key)
            _unicode(v, f"{key}.{k}")
    for i, a in enumerate(n.alerts):
        for key, value in (("fingerprint", a.fingerprint), ("endsAt", a.ends_at),
                           ("generatorURL", a.generator_url)):
            _unicode(value, f"alerts[{i}].{key}")
        for key, labels in (("labels", a.labels), ("annotations", a.annotations)):
            for k, v in labels.items():
                _unicode(k, f"alerts[{i}].{key}")
                _unicode(v, f"alerts[{i}].{key}.{k}")


def _str(obj: dict, key: str, where: str, required: bool = True) -> str:
    if key not in obj:
        if required:
            raise BadNotification(where + key, "missing")
        return ""
    if not isinstance(obj[key], str):
        raise BadNotification(where + key, "must be a string")
    return obj[key]


def _labels(obj: dict, key: str, where: str, required: bool) -> dict[str, str]:
    if key not in obj or (obj[key] is None and not required):
        if required:
            raise BadNotification(where + key, "missing")
        return {}
    value = obj[key]
    if not isinstance(value, dict):
        raise BadNotification(where + key, "must be an object of strings")
    for k, v in value.items():
        if not isinstance(v, str):
            raise BadNotification(f"{where}{key}.{k}", "must be a string")
    return value


def _status(obj: dict, where: str) -> str:
    status = _str(obj, "status", where)
    if status not in STATUSES:
        raise BadNotification(where + "status", "must be 'firing' or 'resolved'")
    return status


def _alert(raw: object, where: str) -> Alert:
    if not isinstance(raw, dict):
        raise BadNotification(where.rstrip("."), "must be an object")
    starts_at = _str(raw, "startsAt", where)
    try:
        parse_time(starts_at)
    except ValueError:
        raise BadNotification(where + "startsAt", "must be an RFC 3339 time") from None
    fingerprint = _str(raw, "fingerprint", where)
    if not fingerprint or len(fingerprint) > 64:
        raise BadNotification(where + "fingerprint", "must be 1 to 64 characters")
    return Alert(
        status=_status(raw, where),
        labels=_labels(raw, "labels", where, required=True),
        annotations=_labels(raw, "annotations", where, required=False),
        starts_at=starts_at,
        ends_at=_str(raw, "endsAt", where, required=False),
        fingerprint=fingerprint,
        generator_url=_str(raw, "generatorURL", where, required=False),
    )


def _too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Arrays and objects nest deeper than ``limit`` (brackets in strings skipped): one
    linear pass that stops at the first level too many."""
    depth, in_string = 0, False
    for m in _TOKEN.finditer(text):
        token = m.group()
        if token == '"':
            in_string = not in_string
        elif in_string or len(token) == 2:
            continue
        elif token in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class _DuplicateKey(ValueError):
    pass


def _object(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object; a key given twice is refused: readers of the journalled body (SQLite's
    json_extract takes the first, Python the last) would disagree about what was sent."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def parse(body: bytes | str) -> Notification:
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise BadNotification("body", "not UTF-8") from None
    if _too_deep(text):
        raise BadNotification("body", f"nested deeper than {MAX_DEPTH} levels")
    try:
        doc = json.loads(text, object_pairs_hook=_object)
    except _DuplicateKey as exc:
        raise BadNotification("body", f"duplicate key {str(exc)[:64]!r}") from None
    except RecursionError:  # unreachable below MAX_DEPTH; never a 500 all the same
        raise BadNotification("body", "nested too deeply") from None
    except ValueError as exc:
        # Python refuses integers of over 4300 digits ("Exceeds the limit").
        why = "a number too long" if "digits" in str(exc) else "not JSON"
        raise BadNotification("body", why) from None
    if not isinstance(doc, dict):
        raise BadNotification("body", "must be a JSON object")
    if doc.get("version") != "4":
        raise BadNotification("version", 'must be "4" (Alertmanager webhook v4)')
    alerts = doc.get("alerts")
    if not isinstance(alerts, list):
        raise BadNotification("alerts", "missing" if alerts is None else "must be a list")
    truncated = doc.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise BadNotification("truncatedAlerts", "must be a non-negative integer")
    n = Notification(
        receiver=_str(doc, "receiver", ""),
        status=_status(doc, ""),
        group_key=_str(doc, "groupKey", ""),
        alerts=[_alert(a, f"alerts[{i}].") for i, a in enumerate(alerts)],
        group_labels=_labels(doc, "groupLabels", "", required=False),
        common_labels=_labels(doc, "commonLabels", "", required=False),
        external_url=_str(doc, "externalURL", "", required=False),
        truncated_alerts=truncated,
    )
    if _SURROGATE_ESCAPE.search(text):
        _check_unicode(n)
    return n
