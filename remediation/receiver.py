"""The webhook receiver: a plain WSGI app in front of :class:`remediation.engine.Engine`.

Routes: ``POST /alerts`` (Alertmanager webhook v4, the webhook token), ``GET /healthz``,
``GET /metrics``, and for readers ``GET /actions`` (runs and the decisions that did not
act, as JSON: ``?since=UNIX&rule=&outcome=&limit=N``) and ``GET /`` (the status page).
Plain WSGI rather than a framework: the ack path is on the hot path of an alert storm.

Readers show the webhook token or the read token (``remediation.read_token_file``) as
``Authorization: Bearer``. A browser cannot send that header from a bookmark: it opens
``/?token=TOKEN`` once and gets a cookie (HttpOnly, SameSite=Strict, 12 h) holding an
HMAC of the tokens — never a token itself, so the cookie cannot post alerts — and a
redirect to ``/``, so the token leaves the address bar and the history. Nothing here
logs a request line, so the token never reaches a log.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pitwatch.remediation import history, statuspage
from pitwatch.remediation.alerts import BadNotification, parse
from pitwatch.remediation.engine import Engine
from pitwatch.remediation.journal import JournalUnavailable

MAX_BODY = 1 << 20  # 1 MiB
COOKIE = "pitwatch_read"
COOKIE_AGE = 12 * 3600
log = logging.getLogger("pitwatch.remediator")


def _json(start_response, status: str, doc, headers=()) -> list[bytes]:
    body = json.dumps(doc).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body))), *headers])
    return [body]


def _html(start_response, status: str, page: str, headers=()) -> list[bytes]:
    body = page.encode()
    start_response(status, [*statuspage.HEADERS, ("Content-Length", str(len(body))), *headers])
    return [body]


class Receiver:
    def __init__(self, engine: Engine, token: bytes | None, read_token: bytes | None = None):
        """``token`` None means ``auth: none`` was chosen explicitly in the config; then
        reading is open too unless a ``read_token`` is set."""
        self.engine = engine
        self.expected = b"Bearer " + token if token is not None else None
        self.readers = [t for t in (token, read_token) if t is not None]
        self.cookie = hmac.new(b"\0".join(self.readers), b"pitwatch status page",
                               hashlib.sha256).hexdigest() if self.readers else None

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
            if not self._may_read(environ):
                return _json(start_response, "401 Unauthorized", {"error": "bearer token required"},
                             [("WWW-Authenticate", 'Bearer realm="pitwatch"')])
            return self.actions(environ, start_response)
        if path == "/":
            return self.page(environ, start_response)
        return _json(start_response, "404 Not Found", {"error": f"no route {path}"})

    def _authorised(self, environ) -> bool:
        if self.expected is None:
            return True
        got = environ.get("HTTP_AUTHORIZATION", "").encode("latin-1", "replace")
        return hmac.compare_digest(got, self.expected)

    def _is_reader_token(self, token: bytes) -> bool:
        # Every token compared, so the time taken says nothing about which one matched.
        return sum(hmac.compare_digest(token, t) for t in self.readers) > 0

    def _may_read(self, environ) -> bool:
        if not self.readers:
            return True
        header = environ.get("HTTP_AUTHORIZATION", "").encode("latin-1", "replace")
        if header.startswith(b"Bearer ") and self._is_reader_token(header[7:]):
            return True
        try:
            jar = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        except CookieError:
            return False
        got = jar[COOKIE].value if COOKIE in jar else ""
        return hmac.compare_digest(got.encode("latin-1", "replace"), self.cookie.encode())

    def actions(self, environ, start_response):
        params = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        try:
            q = history.Query.from_params(params)
        except ValueError as exc:
            return _json(start_response, "400 Bad Request",
                         {"error": f"{exc}: must be a number", "field": str(exc)})
        try:
            doc = history.query(self.engine.journal, q)
        except JournalUnavailable as exc:
            return _json(start_response, "503 Service Unavailable", {"error": str(exc)})
        return _json(start_response, "200 OK", doc)

    def page(self, environ, start_response):
        token = parse_qs(environ.get("QUERY_STRING", "")).get("token", [""])[0]
        if token and self.readers:
            if not self._is_reader_token(token.encode("utf-8", "replace")):
                return _html(start_response, "401 Unauthorized", statuspage.login_page())
            secure = "; Secure" if environ.get("wsgi.url_scheme") == "https" else ""
            return _html(start_response, "303 See Other", "", [
                ("Location", "/"),
                ("Set-Cookie", f"{COOKIE}={self.cookie}; Path=/; Max-Age={COOKIE_AGE}; "
                               f"HttpOnly; SameSite=Strict{secure}")])
        if not self._may_read(environ):
            return _html(start_response, "401 Unauthorized", statuspage.login_page())
        try:
            page = statuspage.render(statuspage.gather(self.engine))
        except JournalUnavailable as exc:
            return _html(start_response, "503 Service Unavailable",
                         f"<!doctype html><title>pitwatch</title><p>journal unavailable: "
                         f"{statuspage.e(exc)}</p>")
        return _html(start_response, "200 OK", page)

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
