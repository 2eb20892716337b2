"""mcp-proxy, which forwards its callers' params (`_meta` included) to the backend: the backend's SERVER span is
the child of the proxy's CLIENT span, which is the child of the proxy's SERVER span."""

from __future__ import annotations

import anyio
import pytest

pytest.importorskip("mcp_proxy")

from mcp import ClientSession
from mcp.server.fastmcp import FastMCP
from mcp.shared.memory import create_client_server_memory_streams, create_connected_server_and_client_session
from mcp_proxy.proxy_server import create_proxy_server
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from support.spans import OURS, mcp_spans, seen

pytestmark = pytest.mark.anyio


def backend() -> FastMCP:
    server = FastMCP("backend")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    return server


async def call_through_the_proxy() -> str:
    low = backend()._mcp_server
    async with (
        create_client_server_memory_streams() as ((client_read, client_write), (server_read, server_write)),
        anyio.create_task_group() as group,
    ):
        group.start_soon(lambda: low.run(server_read, server_write, low.create_initialization_options()))
        async with ClientSession(client_read, client_write) as remote:
            proxy = await create_proxy_server(remote)  # it initializes the session itself
            async with create_connected_server_and_client_session(proxy) as client:
                with trace.get_tracer("agent").start_as_current_span("agent turn"):
                    result = await client.call_tool("add", {"a": 2, "b": 3}, meta={"note": "kept"})
        group.cancel_scope.cancel()
    return str(result.content[0].text)  # type: ignore[union-attr]


async def test_a_call_through_the_proxy(instrumented: InMemorySpanExporter) -> None:
    assert await call_through_the_proxy() == "5"
    spans = seen(instrumented.get_finished_spans())
    [turn] = [span for span in spans if span.name == "agent turn"]
    clients = mcp_spans(spans, "tools/call", SpanKind.CLIENT, "add")
    servers = mcp_spans(spans, "tools/call", SpanKind.SERVER, "add")
    assert {span.scope for span in clients + servers} == {OURS}
    [caller] = [span for span in clients if span.parent_id == turn.span_id]
    [proxy_server] = [span for span in servers if span.parent_id == caller.span_id]
    [proxy_client] = [span for span in clients if span.parent_id == proxy_server.span_id]
    [backend_server] = [span for span in servers if span.parent_id == proxy_client.span_id]
    assert (len(clients), len(servers)) == (2, 2)
    assert backend_server is not proxy_server
