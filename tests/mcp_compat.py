"""The test suite's one seam between mcp generations: raw JSON-RPC over the SDK's in-memory streams."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Any

import anyio
from mcp.server.lowlevel.server import Server
from mcp.shared.memory import create_client_server_memory_streams
from mcp.shared.message import SessionMessage

MCP_VERSION = tuple(int(part) for part in metadata.version("mcp").split(".")[:2])
MCP1 = MCP_VERSION[0] == 1
HANDSHAKE_VERSION = "2025-06-18" if MCP_VERSION >= (1, 10) else "2025-03-26"
MODERN_VERSION = "2026-07-28"

if MCP1:
    from mcp import types as _types

    def to_session_message(payload: dict[str, Any]) -> SessionMessage:
        return SessionMessage(message=_types.JSONRPCMessage.model_validate(payload))

    def from_session_message(message: SessionMessage) -> dict[str, Any]:
        return message.message.model_dump(by_alias=True, mode="json", exclude_none=True)

else:
    import mcp_types as _types2

    def to_session_message(payload: dict[str, Any]) -> SessionMessage:
        return SessionMessage(message=_types2.jsonrpc_message_adapter.validate_python(payload))

    def from_session_message(message: SessionMessage) -> dict[str, Any]:
        return message.message.model_dump(by_alias=True, mode="json", exclude_unset=True)


def jsonrpc(method: str, params: dict[str, Any] | None = None, request_id: Any = None) -> dict[str, Any]:
    """A JSON-RPC request (with an id) or notification (without), as any peer of these tests sends it."""
    payload: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if request_id is not None:
        payload["id"] = request_id
    if params is not None:
        payload["params"] = params
    return payload


def lowlevel(app: Any) -> Server[Any]:
    """The low-level `Server` under a FastMCP (1.x) or MCPServer (2.x) app, or the app itself."""
    for attribute in ("_mcp_server", "_lowlevel_server"):
        if hasattr(app, attribute):
            return getattr(app, attribute)  # type: ignore[no-any-return]
    return app  # type: ignore[no-any-return]


class RawPeer:
    """A client that speaks raw JSON-RPC to a server over the SDK's in-memory streams."""

    def __init__(self, send: Any, receive: Any) -> None:
        self._send = send
        self._receive = receive
        self._ids = itertools.count(1)
        self.received: list[dict[str, Any]] = []

    async def send(self, payload: dict[str, Any]) -> None:
        await self._send.send(to_session_message(payload))

    async def request(self, method: str, params: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        """Send a request and return the response (result or error) for its id."""
        request_id = extra.pop("id", next(self._ids))
        await self.send(jsonrpc(method, params, request_id))
        with anyio.fail_after(10):
            while True:
                message = from_session_message(await self._receive.receive())
                self.received.append(message)
                if message.get("id") == request_id and ("result" in message or "error" in message):
                    return message

    async def pipelined(self, requests: list[tuple[str, dict[str, Any] | None]]) -> list[dict[str, Any]]:
        """Send all the requests, then gather their answers (in the order sent), as a pipelining client does."""
        ids = [next(self._ids) for _ in requests]
        for request_id, (method, params) in zip(ids, requests, strict=True):
            await self.send(jsonrpc(method, params, request_id))
        answers: dict[Any, dict[str, Any]] = {}
        with anyio.fail_after(10):
            while len(answers) < len(ids):
                message = from_session_message(await self._receive.receive())
                self.received.append(message)
                if message.get("id") in ids and ("result" in message or "error" in message):
                    answers[message["id"]] = message
        return [answers[request_id] for request_id in ids]

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        await self.send(jsonrpc(method, params))

    async def initialize(self, meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """The handshake: `initialize`, then `notifications/initialized`."""
        params: dict[str, Any] = {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "raw-test-client", "version": "1.0"},
        }
        if meta is not None:
            params["_meta"] = meta
        response = await self.request("initialize", params)
        await self.notify("notifications/initialized")
        return response


@asynccontextmanager
async def raw_peer(app: Any, *, initialize: bool = True) -> AsyncIterator[RawPeer]:
    """Serve `app` in memory for the duration; yield a raw peer (initialized unless told otherwise)."""
    server = lowlevel(app)
    async with create_client_server_memory_streams() as (client_streams, server_streams):
        client_read, client_write = client_streams
        server_read, server_write = server_streams
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: server.run(server_read, server_write, server.create_initialization_options()))
            peer = RawPeer(client_write, client_read)
            if initialize:
                await peer.initialize()
            yield peer
            group.cancel_scope.cancel()


def streamable_http_app(app: Any, *, stateless: bool, json_response: bool) -> Any:
    """The Starlette app serving a high-level app over streamable HTTP at /mcp."""
    if MCP1:
        app.settings.stateless_http = stateless
        app.settings.json_response = json_response
        return app.streamable_http_app()
    return app.streamable_http_app(stateless_http=stateless, json_response=json_response)


def sse_app(app: Any) -> Any:
    """The Starlette app serving a high-level app over SSE: GET /sse, POST /messages/."""
    return app.sse_app()


@asynccontextmanager
async def sdk_client(app: Any, **callbacks: Any) -> AsyncIterator[Any]:
    """The SDK's own `ClientSession`, initialized, talking to `app` over in-memory streams."""
    from mcp import ClientSession

    server = lowlevel(app)
    options = server.create_initialization_options()
    async with (
        create_client_server_memory_streams() as ((client_read, client_write), (server_read, server_write)),
        anyio.create_task_group() as group,
    ):
        group.start_soon(lambda: server.run(server_read, server_write, options))
        async with ClientSession(client_read, client_write, **callbacks) as session:
            await session.initialize()
            yield session
        group.cancel_scope.cancel()


async def call_tool_with_meta(session: Any, name: str, arguments: dict[str, Any], meta: dict[str, Any]) -> Any:
    """`tools/call` with the caller's own `_meta` (1.x sessions before 1.13 take no `meta=`)."""
    if not MCP1:
        return await session.call_tool(name, arguments, meta=meta)
    request = _types.CallToolRequest(
        method="tools/call", params=_types.CallToolRequestParams(name=name, arguments=arguments, _meta=meta)
    )
    return await session.send_request(_types.ClientRequest(request), _types.CallToolResult)


def read_timeout(seconds: float) -> Any:
    """A session read timeout as the generation's `ClientSession` takes it."""
    from datetime import timedelta

    return timedelta(seconds=seconds) if MCP1 else seconds


def is_error(result: Any) -> bool:
    """`CallToolResult.isError` (1.x) / `.is_error` (2.x)."""
    return bool(getattr(result, "isError", None) or getattr(result, "is_error", None))


def instrumented_command() -> str:
    """`opentelemetry-instrument` beside this Python."""
    import shutil
    import sys
    from pathlib import Path

    command = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    assert command is not None, "opentelemetry-instrument is not installed beside this Python"
    return command


def stdio_parameters(
    *, instrumented: bool, service: str = "reference-server", otel: dict[str, str] | None = None
) -> Any:
    """How to spawn the reference server over stdio, under `opentelemetry-instrument` or not.

    The SDK's stdio client passes the server only a few safe variables: the `OTEL_*` ones go in `env=`.
    """
    import os
    import sys
    from pathlib import Path

    from mcp import StdioServerParameters

    root = Path(__file__).resolve().parent.parent
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(root)}
    env.update({key: value for key, value in os.environ.items() if key.startswith("OTEL_")})
    env.update(otel or {})
    env["OTEL_SERVICE_NAME"] = service
    server = [sys.executable, str(root / "tests" / "apps.py"), "stdio"]
    command = [instrumented_command(), *server] if instrumented else server
    return StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=str(root))


@asynccontextmanager
async def connected(transport: str, target: Any = None, **callbacks: Any) -> AsyncIterator[Any]:
    """An initialized SDK `ClientSession` to a reference server: `memory` (`target` the app), `stdio`
    (`target` the `StdioServerParameters`), `http` (`target` the streamable HTTP URL) or `sse` (the SSE URL)."""
    from mcp import ClientSession

    if transport == "memory":
        async with sdk_client(target, **callbacks) as session:
            yield session
        return
    if transport == "stdio":
        from mcp.client.stdio import stdio_client

        opened: Any = stdio_client(target)
    elif transport == "sse":
        from mcp.client.sse import sse_client

        opened = sse_client(target)
    else:
        from mcp.client import streamable_http

        opened = getattr(streamable_http, "streamable_http_client", None) or streamable_http.streamablehttp_client
        opened = opened(target)
    async with opened as streams, ClientSession(streams[0], streams[1], **callbacks) as session:
        await session.initialize()
        yield session


class Wire:
    """What a client session wrote to its peer, as JSON; the peer answers every request with a minimal result."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def last(self, method: str) -> dict[str, Any]:
        return [message for message in self.sent if message.get("method") == method][-1]

    async def serve(self, read: Any, write: Any) -> None:
        async for message in read:
            payload = from_session_message(message)
            self.sent.append(payload)
            if "id" in payload and "method" in payload:
                await write.send(
                    to_session_message({"jsonrpc": "2.0", "id": payload["id"], "result": _answer(payload)})
                )


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    if request["method"] == "initialize":
        return {
            "protocolVersion": request["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "wire", "version": "1.0"},
        }
    return {"tools/call": {"content": []}, "tools/list": {"tools": []}}.get(request["method"], {})


@asynccontextmanager
async def wire_client() -> AsyncIterator[tuple[Any, Wire]]:
    """The SDK's own `ClientSession`, initialized, whose peer records every message it sends."""
    from mcp import ClientSession

    wire = Wire()
    async with (
        create_client_server_memory_streams() as ((client_read, client_write), (server_read, server_write)),
        anyio.create_task_group() as group,
    ):
        group.start_soon(wire.serve, server_read, server_write)
        async with ClientSession(client_read, client_write) as session:
            await session.initialize()
            yield session, wire
        group.cancel_scope.cancel()
