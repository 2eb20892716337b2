"""mcp 2.x: the 2026-07-28 era (no `initialize`, self-contained requests) and server middleware."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from support.apps import reference_app
from support.compat import MCP1, MODERN_VERSION, lowlevel, streamable_http_app
from support.peers import StreamableHttpPeer, raw_peer, serving
from support.spans import PARENT_ID, TRACE_ID, TRACEPARENT, child_of, one, ours

pytestmark = pytest.mark.skipif(MCP1, reason="mcp 1.x serves only the initialize era")


def envelope(**extra: Any) -> dict[str, Any]:
    """The per-request `_meta` of the 2026-07-28 protocol."""
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
        "io.modelcontextprotocol/clientInfo": {"name": "modern-client", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
        **extra,
    }


def add_params(meta: dict[str, Any]) -> dict[str, Any]:
    return {"name": "add", "arguments": {"a": 1, "b": 2}, "_meta": meta}


@pytest.mark.anyio
async def test_modern_requests_in_memory(instrumented: InMemorySpanExporter) -> None:
    async with raw_peer(reference_app(), initialize=False) as peer:
        answer = await peer.request("tools/call", add_params(envelope(traceparent=TRACEPARENT)))
        assert answer["result"]["isError"] is False
        assert "result" in await peer.request("tools/list", {"_meta": envelope()})
    spans = ours(instrumented)
    assert [span.name for span in spans] == ["tools/call add", "tools/list"]
    tool, listing = spans
    assert dict(tool.attributes or {}) == {
        "mcp.method.name": "tools/call",
        "jsonrpc.request.id": "1",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "mcp.protocol.version": MODERN_VERSION,
    }
    assert tool.parent is not None
    assert (format(tool.context.trace_id, "032x"), format(tool.parent.span_id, "016x")) == (TRACE_ID, PARENT_ID)
    assert listing.parent is None
    assert "mcp.session.id" not in (listing.attributes or {})


def test_modern_requests_over_http(instrumented: InMemorySpanExporter) -> None:
    asgi = streamable_http_app(reference_app(), stateless=False, json_response=True)
    with serving(asgi) as url:
        peer = StreamableHttpPeer(url, {"mcp-protocol-version": MODERN_VERSION})
        headers = {"mcp-method": "tools/call", "mcp-name": "add"}
        answer = peer.request("tools/call", add_params(envelope(traceparent=TRACEPARENT)), **headers)
        assert answer["result"]["isError"] is False
        assert peer.session_id is None
    [tool] = ours(instrumented)
    attributes = dict(tool.attributes or {})
    assert tool.name == "tools/call add"
    assert attributes["mcp.protocol.version"] == MODERN_VERSION
    assert attributes["network.transport"] == "tcp"
    assert attributes["client.address"] == "127.0.0.1"
    assert "mcp.session.id" not in attributes
    assert tool.parent is not None
    assert format(tool.parent.span_id, "016x") == PARENT_ID


@pytest.mark.anyio
async def test_server_middleware_keeps_running_inside_the_one_span(instrumented: InMemorySpanExporter) -> None:
    from mcp.shared.exceptions import MCPError

    seen: list[str] = []

    async def reject_unknown_tools(ctx: Any, call_next: Any) -> Any:
        """Like mcp-server-time's middleware: unknown tools are -32602, before any handler."""
        seen.append(ctx.method)
        if ctx.method == "tools/call" and ctx.params.get("name") != "add":
            raise MCPError(code=-32602, message="Unknown tool")
        return await call_next(ctx)

    app = reference_app()
    lowlevel(app).middleware.append(reject_unknown_tools)
    async with raw_peer(app) as peer:
        assert (await peer.request("tools/call", {"name": "nope", "arguments": {}}))["error"]["code"] == -32602
        assert "result" in await peer.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 1}})
    assert seen == ["initialize", "notifications/initialized", "tools/call", "tools/call"]
    server_spans = [span for span in instrumented.get_finished_spans() if span.kind.name == "SERVER"]
    assert [span.name for span in server_spans] == [
        "initialize",
        "notifications/initialized",
        "tools/call nope",
        "tools/call add",
    ]
    rejected = server_spans[2]
    assert dict(rejected.attributes or {})["rpc.response.status_code"] == "-32602"
    assert rejected.status.status_code is StatusCode.UNSET


def test_a_tools_notification_in_a_modern_exchange(instrumented: InMemorySpanExporter) -> None:
    asgi = streamable_http_app(reference_app(), stateless=False, json_response=False)
    with serving(asgi) as url:
        peer = StreamableHttpPeer(url, {"mcp-protocol-version": MODERN_VERSION})
        params = {
            "name": "announce",
            "arguments": {},
            "_meta": envelope(**{"io.modelcontextprotocol/logLevel": "info"}),
        }
        answer = peer.request("tools/call", params, **{"mcp-method": "tools/call", "mcp-name": "announce"})
        assert answer["result"]["isError"] is False
    spans = ours(instrumented)
    tool = one(spans, "tools/call announce", SpanKind.SERVER)
    sent = one(spans, "notifications/message", SpanKind.CLIENT)
    assert child_of(sent, tool)
    attributes = dict(sent.attributes or {})
    assert (attributes["mcp.protocol.version"], attributes["network.transport"]) == (MODERN_VERSION, "tcp")
