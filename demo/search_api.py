"""A slow local "search API" over HTTP: what a tool calls downstream. It records the headers it receives."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from typing_extensions import Self


class SearchApi:
    """`GET /search?q=...` on 127.0.0.1, answered after `delay` seconds; `received` holds each request's headers."""

    def __init__(self, delay: float = 0.3) -> None:
        self.delay = delay
        self.received: list[dict[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.received.append({key.lower(): value for key, value in self.headers.items()})
                time.sleep(api.delay)
                query = parse_qs(urlsplit(self.path).query).get("q", [""])[0]
                body = json.dumps({"query": query, "results": ["a", "b", "c"]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the demo prints traces, not access logs."""

        return Handler

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/search"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
