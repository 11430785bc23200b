"""A tiny trading app for the remediation tests: its /health depends on the release it
was started from and on its database being sound.

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


def serve(port: int, release: dict, database: str, pid_file: str) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/health":
                ok = release.get("healthy", True) and db_ok(database)
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
