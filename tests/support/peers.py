"""Raw JSON-RPC peers, as foreign clients speak to a server: over the SDK's in-memory streams, streamable HTTP, SSE
and a server process's stdio; and uvicorn serving an ASGI app on 127.0.0.1 in a thread.

The peers share one request loop (`Peer.request`, and its async twin `MemoryPeer.request` for the in-memory
streams): send the request, then take the messages the server sends until one answers it.
"""

from __future__ import annotations

import itertools
import json
import queue
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import uvicorn
from mcp.shared.memory import create_client_server_memory_streams

from support.compat import HANDSHAKE_VERSION, from_session_message, lowlevel, to_session_message
from support.processes import ROOT, free_port

ACCEPT = "application/json, text/event-stream"


def jsonrpc(method: str, params: dict[str, Any] | None = None, request_id: Any = None) -> dict[str, Any]:
    """A JSON-RPC request (with an id) or notification (without), as any peer of these tests sends it."""
    payload: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if request_id is not None:
        payload["id"] = request_id
    if params is not None:
        payload["params"] = params
    return payload


def initialize_params(meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The params of a raw client's `initialize`, with the `_meta` given."""
    params: dict[str, Any] = {
        "protocolVersion": HANDSHAKE_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "raw-test-client", "version": "1.0"},
    }
    if meta is not None:
        params["_meta"] = meta
    return params


def answers(message: dict[str, Any], request_id: Any) -> bool:
    """Whether `message` is the response (result or error) to the request of that id."""
    return message.get("id") == request_id and ("result" in message or "error" in message)


class Peer:
    """A raw client over a transport of its own (`send` and `receive`), with the one request loop."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def send(self, payload: dict[str, Any], headers: dict[str, str]) -> list[dict[str, Any]]:
        """Send one message; what the server answered in the same exchange, if the transport answers so."""
        raise NotImplementedError

    def receive(self) -> dict[str, Any]:
        """The next message the server sends on its own."""
        raise NotImplementedError

    def request(self, method: str, params: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
        """Send a request (with HTTP headers, where the transport has them) and return the response for its id."""
        request_id = next(self._ids)
        pending = iter(self.send(jsonrpc(method, params, request_id), headers))
        while True:
            message = next(pending, None) or self.receive()
            if answers(message, request_id):
                return message

    def notify(self, method: str, params: dict[str, Any] | None = None, **headers: str) -> None:
        self.send(jsonrpc(method, params), headers)

    def initialize(self, meta: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
        """The handshake: `initialize` (with `_meta` and HTTP headers as given), then `notifications/initialized`."""
        answer = self.request("initialize", initialize_params(meta), **headers)
        self.notify("notifications/initialized")
        return answer


class StreamableHttpPeer(Peer):
    """A raw streamable HTTP client: one POST per message, the session id echoed once the server assigns one, and
    the negotiated protocol version once initialized."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.client = httpx.Client(base_url=url, timeout=10, follow_redirects=True)
        self.session_id: str | None = None
        self.headers = dict(headers or {})

    def send(self, payload: dict[str, Any], headers: dict[str, str]) -> list[dict[str, Any]]:
        all_headers = {"Accept": ACCEPT, "Content-Type": "application/json", **self.headers, **headers}
        if self.session_id is not None:
            all_headers["mcp-session-id"] = self.session_id
        response = self.client.post("/mcp", content=json.dumps(payload), headers=all_headers)
        self.session_id = response.headers.get("mcp-session-id", self.session_id)
        if "id" not in payload:
            assert response.status_code == 202, response.text  # a notification is accepted, not answered
            return []
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            messages = sse_messages(response.text)
        else:
            messages = [response.json()]
        assert [answers(message, payload["id"]) for message in messages].count(True) == 1, messages
        return messages

    def receive(self) -> dict[str, Any]:
        raise AssertionError("the POST's response did not answer the request")

    def initialize(self, meta: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
        answer = self.request("initialize", initialize_params(meta), **headers)
        self.headers["mcp-protocol-version"] = answer["result"]["protocolVersion"]
        self.notify("notifications/initialized")
        return answer

    def close(self) -> None:
        if self.session_id is not None:
            self.client.delete("/mcp", headers={"mcp-session-id": self.session_id})
        self.client.close()


class SsePeer(Peer):
    """A raw client of the SSE transport: answers arrive on the GET /sse stream, read by a thread."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.client = httpx.Client(base_url=url, timeout=10)
        self._inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self._endpoint: queue.Queue[str] = queue.Queue()
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

    def send(self, payload: dict[str, Any], headers: dict[str, str]) -> list[dict[str, Any]]:
        response = self.client.post(
            self.messages_path, content=json.dumps(payload), headers={"Content-Type": "application/json", **headers}
        )
        assert response.status_code == 202, response.text
        return []

    def receive(self) -> dict[str, Any]:
        return self._inbox.get(timeout=10)

    def close(self) -> None:
        self._stop.set()
        self.client.close()


class StdioPeer(Peer):
    """A raw client of a server process: one JSON message per line on its stdin and stdout."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path = ROOT) -> None:
        super().__init__()
        # a pipe left unread would block a chatty server: stderr goes to a file, read back by close()
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )

    def send(self, payload: dict[str, Any], headers: dict[str, str]) -> list[dict[str, Any]]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(payload) + "\n")
        self.process.stdin.flush()
        return []

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"server exited: {self.close()}"
        message: dict[str, Any] = json.loads(line)
        return message

    def close(self) -> str:
        """Close stdin (the server's signal to stop); return what it wrote to stderr."""
        self.process.communicate(timeout=30)
        self._stderr.seek(0)
        stderr = self._stderr.read()
        self._stderr.close()
        return stderr


class MemoryPeer:
    """A raw client over the SDK's in-memory streams, async, with the same request loop as `Peer`'s."""

    def __init__(self, send: Any, receive: Any) -> None:
        self._send = send
        self._receive = receive
        self._ids = itertools.count(1)

    async def send(self, payload: dict[str, Any]) -> None:
        await self._send.send(to_session_message(payload))

    async def receive(self) -> dict[str, Any]:
        return from_session_message(await self._receive.receive())

    async def request(self, method: str, params: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        """Send a request (its `id` as given, else the next one) and return the response for its id."""
        request_id = extra.pop("id", next(self._ids))
        await self.send(jsonrpc(method, params, request_id))
        with anyio.fail_after(10):
            while True:
                message = await self.receive()
                if answers(message, request_id):
                    return message

    async def pipelined(self, requests: list[tuple[str, dict[str, Any] | None]]) -> list[dict[str, Any]]:
        """Send all the requests, then gather their answers (in the order sent), as a pipelining client does."""
        ids = [next(self._ids) for _ in requests]
        for request_id, (method, params) in zip(ids, requests, strict=True):
            await self.send(jsonrpc(method, params, request_id))
        found: dict[Any, dict[str, Any]] = {}
        with anyio.fail_after(10):
            while len(found) < len(ids):
                message = await self.receive()
                if any(answers(message, request_id) for request_id in ids):
                    found[message["id"]] = message
        return [found[request_id] for request_id in ids]

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        await self.send(jsonrpc(method, params))

    async def initialize(self, meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """The handshake: `initialize`, then `notifications/initialized`."""
        response = await self.request("initialize", initialize_params(meta))
        await self.notify("notifications/initialized")
        return response


@asynccontextmanager
async def raw_peer(app: Any, *, initialize: bool = True) -> AsyncIterator[MemoryPeer]:
    """Serve `app` in memory for the duration; yield a raw peer (initialized unless told otherwise)."""
    server = lowlevel(app)
    async with create_client_server_memory_streams() as (client_streams, server_streams):
        client_read, client_write = client_streams
        server_read, server_write = server_streams
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: server.run(server_read, server_write, server.create_initialization_options()))
            peer = MemoryPeer(client_write, client_read)
            if initialize:
                await peer.initialize()
            yield peer
            group.cancel_scope.cancel()


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
    assert not thread.is_alive(), "uvicorn did not shut down within 10 s"


class RequestRecorder:
    """An ASGI middleware that records every HTTP request an app receives: method, headers, body."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[str, dict[str, str], bytearray]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = bytearray()
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        self.requests.append((scope["method"], headers, body))

        async def recording() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
            return message

        await self.app(scope, recording, send)

    def posted(self) -> list[tuple[dict[str, str], dict[str, Any]]]:
        """The headers and JSON-RPC message of every POST that carried one."""
        return [(headers, json.loads(body)) for method, headers, body in self.requests if method == "POST" and body]

    def others(self) -> list[tuple[str, dict[str, str]]]:
        """The method and headers of every other request (the GET stream, the DELETE)."""
        return [(method, headers) for method, headers, _ in self.requests if method != "POST"]


def sse_messages(text: str) -> list[dict[str, Any]]:
    """The JSON-RPC messages in an SSE body."""
    return [
        json.loads(line[len("data:") :]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip()
    ]


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
