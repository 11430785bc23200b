"""The webhook receiver: a plain WSGI app in front of :class:`remediation.engine.Engine`.

Routes: ``POST /alerts`` (Alertmanager webhook v4), ``GET /healthz``, ``GET /metrics``,
``GET /actions`` (recent runs as JSON, ``?limit=N``). Plain WSGI rather than a
framework: the ack path is on the hot path of an alert storm.
"""
from __future__ import annotations

import hmac
import json
import logging
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pitwatch.remediation.alerts import BadNotification, parse
from pitwatch.remediation.engine import Engine
from pitwatch.remediation.journal import JournalUnavailable

MAX_BODY = 1 << 20  # 1 MiB
log = logging.getLogger("pitwatch.remediator")


def _json(start_response, status: str, doc, headers=()) -> list[bytes]:
    body = json.dumps(doc).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body))), *headers])
    return [body]


class Receiver:
    def __init__(self, engine: Engine, token: bytes | None):
        """``token`` None means ``auth: none`` was chosen explicitly in the config."""
        self.engine = engine
        self.expected = b"Bearer " + token if token is not None else None

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        if path == "/alerts":
            if method != "POST":
                return _json(start_response, "405 Method Not Allowed", {"error": "use POST"},
                             [("Allow", "POST")])
            return self.alerts(environ, start_response)
        if method not in ("GET", "HEAD"):
            return _json(start_response, "405 Method Not Allowed", {"error": "use GET"},
                         [("Allow", "GET")])
        if path == "/healthz":
            try:
                self.engine.journal.ping()
            except Exception as exc:  # a health check reports, it does not raise
                return _json(start_response, "503 Service Unavailable",
                             {"status": "journal unavailable", "error": str(exc)})
            # Without the shared claims nothing acts, yet notifications are still accepted
            # and journalled: 200 with the reason, since restarting the receiver cures nothing.
            claims = self.engine.claims_error()
            if claims:
                return _json(start_response, "200 OK",
                             {"status": "degraded", "acting": False, "error": claims})
            return _json(start_response, "200 OK", {"status": "ok"})
        if path == "/metrics":
            body = generate_latest(self.engine.metrics.registry)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST),
                                      ("Content-Length", str(len(body)))])
            return [body]
        if path == "/actions":
            try:
                limit = int(parse_qs(environ.get("QUERY_STRING", "")).get("limit", ["50"])[0])
            except ValueError:
                return _json(start_response, "400 Bad Request",
                             {"error": "limit: must be an integer", "field": "limit"})
            return _json(start_response, "200 OK",
                         {"runs": self.engine.journal.recent_runs(max(1, min(limit, 500)))})
        return _json(start_response, "404 Not Found", {"error": f"no route {path}"})

    def _authorised(self, environ) -> bool:
        if self.expected is None:
            return True
        got = environ.get("HTTP_AUTHORIZATION", "").encode("latin-1", "replace")
        return hmac.compare_digest(got, self.expected)

    def alerts(self, environ, start_response):
        if not self._authorised(environ):
            return _json(start_response, "401 Unauthorized", {"error": "bearer token required"},
                         [("WWW-Authenticate", 'Bearer realm="pitwatch"')])
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _json(start_response, "400 Bad Request",
                         {"error": "Content-Length: not a number", "field": "Content-Length"})
        if length > MAX_BODY:
            return _json(start_response, "413 Request Entity Too Large",
                         {"error": f"body over {MAX_BODY} bytes"})
        # Chunked bodies carry no length: read one byte past the limit to notice.
        body = environ["wsgi.input"].read(length if length else MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return _json(start_response, "413 Request Entity Too Large",
                         {"error": f"body over {MAX_BODY} bytes"})
        try:
            notification = parse(body)
        except BadNotification as exc:
            return _json(start_response, "400 Bad Request",
                         {"error": str(exc), "field": exc.field})
        try:
            queued = self.engine.accept(notification, body.decode("utf-8"))
        except JournalUnavailable as exc:
            log.error("journal unavailable, answering 503 so Alertmanager retries: %s", exc)
            return _json(start_response, "503 Service Unavailable",
                         {"error": "journal unavailable; retry"}, [("Retry-After", "5")])
        self.engine.dispatch(queued)  # after the commit; the reply never waits for them
        return _json(start_response, "200 OK", {"accepted": len(notification.alerts),
                                                "runs": [q.run_id for q in queued]})
