"""The SDK's own client sessions, as agents open them, to the reference servers and to a recording peer."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.shared.memory import create_client_server_memory_streams

from support.compat import from_session_message, lowlevel, to_session_message
from support.processes import ROOT, TESTS, reference_server


@asynccontextmanager
async def sdk_client(app: Any, **callbacks: Any) -> AsyncIterator[Any]:
    """The SDK's own `ClientSession`, initialized, talking to `app` over in-memory streams."""
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


def stdio_parameters(
    *, instrumented: bool, service: str = "reference-server", otel: dict[str, str] | None = None
) -> StdioServerParameters:
    """How to spawn the reference server over stdio, under `opentelemetry-instrument` or not.

    The SDK's stdio client passes the server only a few safe variables: the `OTEL_*` ones go in `env=`.
    """
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(TESTS)}
    env.update({key: value for key, value in os.environ.items() if key.startswith("OTEL_")})
    env.update(otel or {})
    env["OTEL_SERVICE_NAME"] = service
    command = reference_server("stdio", instrumented=instrumented)
    return StdioServerParameters(command=command[0], args=command[1:], env=env, cwd=str(ROOT))


@asynccontextmanager
async def connected(transport: str, target: Any = None, **callbacks: Any) -> AsyncIterator[Any]:
    """An initialized SDK `ClientSession` to a reference server: `memory` (`target` the app), `stdio`
    (`target` the `StdioServerParameters`), `http` (`target` the streamable HTTP URL) or `sse` (the SSE URL)."""
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
