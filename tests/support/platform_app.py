"""A tiny trading app for the remediation tests: its /health depends on the release it
was started from and on its database being sound; GET /api/trades answers unless the
release breaks it ("api": false), and POST /api/trades writes one trade.

    python platform_app.py PORT RELEASES_DIR DATABASE PID_FILE [ENV_FILE TAG_VAR]

With ENV_FILE, the release is the tag in that compose-style .env (RELEASES_DIR/<tag>);
otherwise RELEASES_DIR/current. The pid file is written once the port listens.
"""
import json
import os
import sqlite3
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def db_ok(database: str) -> bool:
    try:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=2)
        try:
            return conn.execute("pragma quick_check").fetchone()[0] == "ok"
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def _count(database: str) -> int:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=2)
    try:
        return conn.execute("select count(*) from trades").fetchone()[0]
    finally:
        conn.close()


def serve(port: int, release: dict, database: str, pid_file: str) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/health":
                ok = release.get("healthy", True) and db_ok(database)
                self._send(200 if ok else 500, {"version": release["version"], "ok": ok})
            elif self.path == "/api/trades" and release.get("api", True):
                self._send(200, {"trades": _count(database)})
            else:
                self._send(404, {})

        def do_POST(self):
            if self.path != "/api/trades":
                return self._send(404, {})
            try:
                conn = sqlite3.connect(database, timeout=5)
                with conn:
                    cur = conn.execute("insert into trades (symbol, qty, price, executed_at) "
                                       "values ('ES', 1, 5000, strftime('%s', 'now'))")
                conn.close()
                self._send(201, {"id": cur.lastrowid})
            except sqlite3.Error as exc:
                self._send(500, {"error": str(exc)})

        def _send(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    # Renamed into place: whoever sees the file can read the whole pid.
    tmp = Path(f"{pid_file}.tmp")
    tmp.write_text(str(os.getpid()))
    tmp.replace(pid_file)
    server.serve_forever()


def main(argv: list[str]) -> None:
    port, releases, database, pid_file = int(argv[1]), Path(argv[2]), argv[3], argv[4]
    if len(argv) > 6:
        tag = next(line.split("=", 1)[1].strip() for line in Path(argv[5]).read_text().splitlines()
                   if line.startswith(argv[6] + "="))
        release_dir = releases / tag
    else:
        release_dir = releases / "current"
    release = json.loads((release_dir / "release.json").read_text())
    serve(port, release, database, pid_file)


if __name__ == "__main__":
    main(sys.argv)
