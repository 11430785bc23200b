"""Real servers for the tests: an HTTP(S) server in this process, a redis-server."""
from __future__ import annotations

import http.server
import socket
import ssl
import threading
from pathlib import Path

from pitwatch.core.procs import Child, free_port
from support.waiting import STARTUP, wait_until


class HTTPServer:
    """A real threaded HTTP(S) server on 127.0.0.1 answering every GET with ``headers``."""

    def __init__(self, headers: dict[str, str] | None = None, cert: tuple[Path, Path] | None = None):
        extra = dict(headers or {})

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        scheme = "http"
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*map(str, cert))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def start_redis(folder: Path, *extra: str, port: int | None = None) -> tuple[Child, str]:
    """A redis-server without persistence on 127.0.0.1, answering: (child, redis:// URL).

    Pass ``port`` to start it again where a stopped one was (its clients reconnect).
    """
    port = port or free_port()
    child = Child("redis", ["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--daemonize", "no", "--dir", folder, *extra],
                  log=folder / f"redis-{port}.log")

    def ready() -> bool:
        if child.poll() is not None:
            raise RuntimeError(f"redis-server exited with {child.poll()}{child.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    wait_until(ready, STARTUP, what="redis-server")
    return child, f"redis://127.0.0.1:{port}/0"
