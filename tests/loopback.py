"""A threaded HTTP server on 127.0.0.1 (free port) for the API stand-ins tests talk to.

Importable from any test directory: pytest puts ``tests/`` (the rootdir conftest's folder) on ``sys.path``.
"""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output free of access-log lines."""

    def log_message(self, *args: Any) -> None:
        pass


class TlsHTTPServer(ThreadingHTTPServer):
    """HTTPS; each TLS handshake runs in its connection's handler thread (a stalled client blocks no one)."""

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext
    ):
        super().__init__(address, handler)
        self.context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self.context.wrap_socket(request, server_side=True) as tls:
            super().finish_request(tls, client_address)


class LoopbackServer:
    """Serves ``handler`` in a daemon thread once started; ``url`` is its base URL plus ``path``.

    With ``ssl_context`` (a server context holding a certificate for 127.0.0.1) it serves HTTPS.
    """

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], path: str = "", ssl_context: ssl.SSLContext | None = None
    ) -> None:
        if ssl_context is None:
            self.server: ThreadingHTTPServer = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        else:
            self.server = TlsHTTPServer(("127.0.0.1", 0), handler, ssl_context)
        scheme = "http" if ssl_context is None else "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}{path}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
