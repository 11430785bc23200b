"""A tiny trading app for the remediation tests: its /health depends on the release it
was started from and on its database being sound.

    python remediation_app.py PORT RELEASES_DIR DATABASE PID_FILE [ENV_FILE TAG_VAR]

With ENV_FILE, the release is the tag in that compose-style .env (RELEASES_DIR/<tag>);
otherwise RELEASES_DIR/current.
"""
import json
import os
import sqlite3
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

port, releases, database, pid_file = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
if len(sys.argv) > 6:
    tag = next(line.split("=", 1)[1].strip() for line in Path(sys.argv[5]).read_text().splitlines()
               if line.startswith(sys.argv[6] + "="))
    release_dir = releases / tag
else:
    release_dir = releases / "current"
release = json.loads((release_dir / "release.json").read_text())


def db_ok() -> bool:
    try:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=2)
        try:
            return conn.execute("pragma quick_check").fetchone()[0] == "ok"
        finally:
            conn.close()
    except sqlite3.Error:
        return False


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            ok = release.get("healthy", True) and db_ok()
            body = json.dumps({"version": release["version"], "ok": ok}).encode()
            self.send_response(200 if ok else 500)
        else:
            body, _ = b"{}", self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
Path(pid_file).write_text(str(os.getpid()))
server.serve_forever()
