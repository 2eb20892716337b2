"""uvicorn on 127.0.0.1 in a thread, and raw HTTP clients of its streamable HTTP and SSE endpoints."""

from __future__ import annotations

import itertools
import json
import queue
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from tests.mcp_compat import HANDSHAKE_VERSION, jsonrpc

ACCEPT = "application/json, text/event-stream"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(asgi_app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 for the duration; yield its base URL."""
    # sse-starlette 2.x keeps one exit event, bound to the first event loop that used it: each server has its own
    from sse_starlette.sse import AppStatus

    if hasattr(AppStatus, "should_exit_event"):
        AppStatus.should_exit_event = None
    port = free_port()
    config = uvicorn.Config(
        asgi_app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def sse_messages(text: str) -> list[dict[str, Any]]:
    """The JSON-RPC messages in an SSE body."""
    return [
        json.loads(line[len("data:") :]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip()
    ]


class StreamableHttpPeer:
    """A raw streamable HTTP client: one POST per message, the session id echoed once the server assigns one."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.client = httpx.Client(base_url=url, timeout=10, follow_redirects=True)
        self.session_id: str | None = None
        self.headers = dict(headers or {})
        self._ids = itertools.count(1)

    def post(self, payload: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        all_headers = {"Accept": ACCEPT, "Content-Type": "application/json", **self.headers, **(headers or {})}
        if self.session_id is not None:
            all_headers["mcp-session-id"] = self.session_id
        response = self.client.post("/mcp", content=json.dumps(payload), headers=all_headers)
        self.session_id = response.headers.get("mcp-session-id", self.session_id)
        return response

    def request(self, method: str, params: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
        request_id = next(self._ids)
        payload = jsonrpc(method, params, request_id)
        response = self.post(payload, headers)
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            messages = sse_messages(response.text)
        else:
            messages = [response.json()]
        [answer] = [message for message in messages if message.get("id") == request_id]
        return answer

    def notify(self, method: str, params: dict[str, Any] | None = None) -> int:
        payload = jsonrpc(method, params)
        return self.post(payload).status_code

    def initialize(self, meta: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
        params: dict[str, Any] = {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "raw-http", "version": "1"},
        }
        if meta is not None:
            params["_meta"] = meta
        answer = self.request("initialize", params, **headers)
        self.headers["mcp-protocol-version"] = answer["result"]["protocolVersion"]
        assert self.notify("notifications/initialized") == 202
        return answer

    def close(self) -> None:
        if self.session_id is not None:
            self.client.delete("/mcp", headers={"mcp-session-id": self.session_id})
        self.client.close()


class SsePeer:
    """A raw client of the SSE transport: answers arrive on the GET /sse stream, read by a thread."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=10)
        self._inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self._endpoint: queue.Queue[str] = queue.Queue()
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()
        self.messages_path = self._endpoint.get(timeout=10)

    def _listen(self) -> None:
        try:
            self._read_stream()
        except httpx.HTTPError:
            if not self._stop.is_set():
                raise

    def _read_stream(self) -> None:
        with self.client.stream("GET", "/sse", headers={"Accept": "text/event-stream"}) as response:
            event = ""
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("event:"):
                    event = line[len("event:") :].strip()
                elif line.startswith("data:"):
                    data = line[len("data:") :].strip()
                    if event == "endpoint":
                        self._endpoint.put(data)
                    else:
                        self._inbox.put(json.loads(data))

    def send(self, payload: dict[str, Any], **headers: str) -> None:
        response = self.client.post(
            self.messages_path, content=json.dumps(payload), headers={"Content-Type": "application/json", **headers}
        )
        assert response.status_code == 202, response.text

    def request(self, method: str, params: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
        request_id = next(self._ids)
        payload = jsonrpc(method, params, request_id)
        self.send(payload, **headers)
        while True:
            message = self._inbox.get(timeout=10)
            if message.get("id") == request_id:
                return message

    def initialize(self, **headers: str) -> dict[str, Any]:
        answer = self.request(
            "initialize",
            {
                "protocolVersion": HANDSHAKE_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "raw-sse", "version": "1"},
            },
            **headers,
        )
        self.send(jsonrpc("notifications/initialized"))
        return answer

    def close(self) -> None:
        self._stop.set()
        self.client.close()


def concurrent_sessions(url: str, sessions: int, calls: int) -> dict[str | None, str]:
    """Stateful streamable HTTP sessions in parallel (32 at a time at most), each initialized with a traceparent of
    its own and making `calls` `tools/call add`; the trace id each session id was given."""

    def one(_: int) -> tuple[str | None, str]:
        trace_id = secrets.token_hex(16)
        peer = StreamableHttpPeer(url)
        peer.initialize(meta={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"})
        for _ in range(calls):
            assert (
                peer.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})["result"]["isError"] is False
            )
        session_id = peer.session_id
        peer.close()
        return session_id, trace_id

    with ThreadPoolExecutor(max_workers=min(sessions, 32)) as pool:
        return dict(pool.map(one, range(sessions)))


def strays(spans: Iterable[Any], trace_of_session: dict[str | None, str]) -> list[Any]:
    """The spans whose trace is not the one their `mcp.session.id` was given."""
    return [
        span
        for span in spans
        if format(span.context.trace_id, "032x") != trace_of_session[dict(span.attributes or {})["mcp.session.id"]]
    ]
