"""A threaded HTTP server on 127.0.0.1 (a free port) for test request handlers."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer


class LocalHTTPServer:
    """Serve ``handler`` (a ``BaseHTTPRequestHandler`` class) while used as a context manager;
    ``base`` is its URL (``http://127.0.0.1:<port>``)."""

    def __init__(self, handler: type) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
