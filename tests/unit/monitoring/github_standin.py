"""A local stand-in for GitHub's REST API: records POST /repos/{owner}/{repo}/dispatches.

Shared by tests/unit/monitoring and tests/integration/monitoring.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class GitHubStandin:
    def __init__(self, repository: str = "acme/housing-mlops", token: str = "ghp_test_token") -> None:
        self.repository, self.token = repository, token
        self.dispatches: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.fail_next: list[int] = []  # statuses to answer before succeeding again
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> GitHubStandin:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                record = {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
                with outer.lock:
                    if self.path != f"/repos/{outer.repository}/dispatches":
                        status = 404
                    elif self.headers.get("Authorization") != f"Bearer {outer.token}":
                        status = 401
                    elif outer.fail_next:
                        status = outer.fail_next.pop(0)
                    else:
                        status = 204
                    (outer.dispatches if status == 204 else outer.rejected).append(record)
                self.send_response(status)
                if status == 204:
                    self.end_headers()
                    return
                data = json.dumps({"message": "stand-in refusal"}).encode()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
