"""Streamable HTTP (stateful and stateless, JSON and SSE responses) and SSE, served by uvicorn on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from support.apps import reference_app
from support.compat import HANDSHAKE_VERSION, sse_app, streamable_http_app
from support.peers import SsePeer, StreamableHttpPeer, serving
from support.sessions import connected
from support.spans import PARENT_ID, TRACE_ID, TRACEPARENT, child_of, one, ours


def assert_http_attributes(span: ReadableSpan) -> None:
    """The HTTP request that carried the message, requests and notifications alike (mcp 1.x drops a notification's
    request in its receive loop: it is read before)."""
    attributes = dict(span.attributes or {})
    assert span.kind is SpanKind.SERVER
    assert attributes["network.transport"] == "tcp"
    assert attributes["network.protocol.name"] == "http"
    assert attributes["network.protocol.version"] == "1.1"
    assert attributes["client.address"] == "127.0.0.1"
    assert isinstance(attributes["client.port"], int)
    assert attributes["client.port"] > 0


def names(spans: list[ReadableSpan]) -> list[str]:
    return [span.name for span in spans]


def test_a_sessions_request_over_a_new_connection_carries_that_connections_port(
    instrumented: InMemorySpanExporter,
) -> None:
    """The peer attributes a session keeps are read again when its requests come from another address."""
    with serving(streamable_http_app(reference_app(), stateless=False, json_response=True)) as url:
        peer = StreamableHttpPeer(url)
        peer.initialize()
        peer.request("ping")
        peer.client.close()  # the next request opens a new connection, from another port
        peer.client = httpx.Client(base_url=url, timeout=10, follow_redirects=True)
        peer.request("ping")
        peer.request("ping")
        peer.close()
    first, second, third = [span for span in ours(instrumented) if span.name == "ping"]
    ports = [dict(span.attributes or {})["client.port"] for span in (first, second, third)]
    assert ports[0] != ports[1] == ports[2]
    for span in (first, second, third):
        assert_http_attributes(span)


@pytest.mark.parametrize("stateless", [False, True], ids=["stateful", "stateless"])
@pytest.mark.parametrize("json_response", [False, True], ids=["sse-response", "json-response"])
def test_streamable_http(instrumented: InMemorySpanExporter, stateless: bool, json_response: bool) -> None:
    asgi = streamable_http_app(reference_app(), stateless=stateless, json_response=json_response)
    with serving(asgi) as url:
        peer = StreamableHttpPeer(url)
        peer.initialize()
        answer = peer.request(
            "tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}, "_meta": {"traceparent": TRACEPARENT}}
        )
        assert answer["result"]["isError"] is False
        failing = peer.request("tools/call", {"name": "explode", "arguments": {}})
        assert failing["result"]["isError"] is True
        assert "result" in peer.request("ping")
        session_id = peer.session_id
        peer.close()
    assert (session_id is None) is stateless
    spans = ours(instrumented)
    assert names(spans) == [
        "initialize",
        "notifications/initialized",
        "tools/call add",
        "tools/call explode",
        "ping",
    ]
    for span in spans:
        assert_http_attributes(span)
        assert dict(span.attributes or {}).get("mcp.protocol.version") == HANDSHAKE_VERSION
        assert dict(span.attributes or {}).get("mcp.session.id") == session_id
    tool = spans[2]
    assert tool.parent is not None
    assert format(tool.parent.span_id, "016x") == PARENT_ID
    assert format(tool.context.trace_id, "032x") == TRACE_ID
    assert {
        key: value
        for key, value in (tool.attributes or {}).items()
        if not key.startswith(("network.", "client.", "mcp.session."))
    } == {
        "mcp.method.name": "tools/call",
        "jsonrpc.request.id": "2",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "mcp.protocol.version": HANDSHAKE_VERSION,
    }
    compute = [span for span in instrumented.get_finished_spans() if span.name == "add.compute"]
    assert [span.parent.span_id if span.parent else None for span in compute] == [tool.context.span_id]
    assert (spans[3].status.status_code, dict(spans[3].attributes or {})["error.type"]) == (
        StatusCode.ERROR,
        "tool_error",
    )


def test_sse_transport(instrumented: InMemorySpanExporter) -> None:
    with serving(sse_app(reference_app())) as url:
        peer = SsePeer(url)
        peer.initialize()
        answer = peer.request(
            "tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}, "_meta": {"traceparent": TRACEPARENT}}
        )
        assert answer["result"]["isError"] is False
        peer.close()
    session_id = peer.messages_path.rsplit("session_id=", 1)[1]
    spans = ours(instrumented)
    requests = [span for span in spans if span.name in ("initialize", "tools/call add")]
    assert names(requests) == ["initialize", "tools/call add"]
    for span in requests:
        assert_http_attributes(span)
        assert dict(span.attributes or {})["mcp.session.id"] == session_id
    tool = requests[1]
    assert tool.parent is not None
    assert format(tool.parent.span_id, "016x") == PARENT_ID


def test_http_answers_are_the_same_uninstrumented(exporter: InMemorySpanExporter) -> None:
    def converse() -> list[Any]:
        with serving(streamable_http_app(reference_app(), stateless=False, json_response=True)) as url:
            peer = StreamableHttpPeer(url)
            answers: list[Any] = [peer.initialize()["result"]]
            for meta in ({"traceparent": TRACEPARENT}, {"traceparent": 1}, {"baggage": ["x"]}, None):
                answers.append(
                    peer.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}, "_meta": meta})
                )
            peer.close()
            return answers

    from opentelemetry_instrumentation_mcp import McpInstrumentor

    plain = converse()
    McpInstrumentor().instrument()
    try:
        assert converse() == plain
    finally:
        McpInstrumentor().uninstrument()


@pytest.mark.anyio
@pytest.mark.parametrize("stateless", [False, True], ids=["stateful", "stateless"])
async def test_a_tools_notification_is_traced_on_every_dispatch(
    instrumented: InMemorySpanExporter, stateless: bool
) -> None:
    logged: list[Any] = []

    async def log(params: Any) -> None:
        logged.append(params)

    app = streamable_http_app(reference_app(), stateless=stateless, json_response=False)
    with serving(app) as url:
        async with connected("http", f"{url}/mcp", logging_callback=log) as session:
            await session.call_tool("announce", {})
    assert len(logged) == 1
    spans = ours(instrumented)
    tool = one(spans, "tools/call announce", SpanKind.SERVER)
    sent = one(spans, "notifications/message", SpanKind.CLIENT)
    assert child_of(sent, tool)
    assert child_of(one(spans, "notifications/message", SpanKind.SERVER), sent)
    tool_attributes, sent_attributes = dict(tool.attributes or {}), dict(sent.attributes or {})
    for key in ("mcp.session.id", "mcp.protocol.version", "network.transport", "network.protocol.name"):
        assert sent_attributes.get(key) == tool_attributes.get(key), key
    assert sent_attributes["network.transport"] == "tcp"
    assert ("mcp.session.id" in sent_attributes) is not stateless
