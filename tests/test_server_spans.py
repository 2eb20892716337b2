"""SERVER spans of every kind of message, over the SDK's in-memory transport, spoken to as a raw client."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from opentelemetry_instrumentation_mcp import McpInstrumentor
from support.apps import raising_lowlevel_app, reference_app
from support.compat import HANDSHAKE_VERSION, MCP1
from support.peers import raw_peer
from support.sessions import sdk_client
from support.spans import BAD_METAS, PARENT_ID, TRACE_ID, TRACEPARENT, USABLE_WITH_BAD_NEIGHBOURS, ours

pytestmark = pytest.mark.anyio


def only(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    matching = [span for span in spans if span.name == name]
    assert len(matching) == 1, f"expected one {name!r} span, got {[span.name for span in spans]}"
    return matching[0]


def base(method: str, request_id: int | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {"mcp.method.name": method, "mcp.protocol.version": HANDSHAKE_VERSION}
    if request_id is not None:
        attributes["jsonrpc.request.id"] = str(request_id)
    return attributes


async def test_initialize_and_initialized(instrumented: InMemorySpanExporter) -> None:
    async with raw_peer(reference_app()) as peer:
        await peer.request("ping")
    spans = ours(instrumented)
    assert [span.name for span in spans] == ["initialize", "notifications/initialized", "ping"]
    initialize = spans[0]
    assert initialize.kind is SpanKind.SERVER
    assert dict(initialize.attributes or {}) == base("initialize", 1)
    assert initialize.status.status_code is StatusCode.UNSET
    assert dict(spans[1].attributes or {}) == base("notifications/initialized", None)
    assert dict(spans[2].attributes or {}) == base("ping", 2)
    assert all(span.kind is SpanKind.SERVER for span in spans)


async def test_tool_call_is_the_active_span_of_its_handler(instrumented: InMemorySpanExporter) -> None:
    async with raw_peer(reference_app()) as peer:
        response = await peer.request("tools/call", {"name": "add", "arguments": {"a": 2, "b": 3}})
    assert response["result"]["isError"] is False
    spans = instrumented.get_finished_spans()
    tool = only(list(spans), "tools/call add")
    assert tool.kind is SpanKind.SERVER
    assert dict(tool.attributes or {}) == {
        **base("tools/call", 2),
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
    }
    assert tool.status.status_code is StatusCode.UNSET
    compute = only(list(spans), "add.compute")
    assert compute.parent is not None
    assert compute.parent.span_id == tool.context.span_id
    assert compute.context.trace_id == tool.context.trace_id


async def test_tool_that_raises_is_a_tool_error(instrumented: InMemorySpanExporter) -> None:
    async with raw_peer(reference_app()) as peer:
        response = await peer.request("tools/call", {"name": "explode", "arguments": {}})
    assert response["result"]["isError"] is True
    tool = only(ours(instrumented), "tools/call explode")
    assert tool.attributes is not None
    assert tool.attributes["error.type"] == "tool_error"
    assert tool.status.status_code is StatusCode.ERROR


async def test_unknown_tool_span_matches_the_answer(instrumented: InMemorySpanExporter) -> None:
    async with raw_peer(reference_app()) as peer:
        response = await peer.request("tools/call", {"name": "nope", "arguments": {}})
    tool = only(ours(instrumented), "tools/call nope")
    attributes = dict(tool.attributes or {})
    assert attributes["gen_ai.tool.name"] == "nope"
    if "error" in response:
        assert response["error"]["code"] == -32602
        assert attributes["rpc.response.status_code"] == "-32602"
        assert "error.type" not in attributes
        assert tool.status.status_code is StatusCode.UNSET
    else:
        assert response["result"]["isError"] is True
        assert attributes["error.type"] == "tool_error"
        assert tool.status.status_code is StatusCode.ERROR


async def test_prompt_and_resource_and_lists(instrumented: InMemorySpanExporter) -> None:
    async with raw_peer(reference_app()) as peer:
        for method in ("tools/list", "prompts/list", "resources/list", "resources/templates/list"):
            assert "result" in await peer.request(method)
        assert "result" in await peer.request("prompts/get", {"name": "greet", "arguments": {"name": "Ada"}})
        assert "result" in await peer.request("resources/read", {"uri": "demo://readme"})
    spans = ours(instrumented)
    assert [span.name for span in spans][2:] == [
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/templates/list",
        "prompts/get greet",
        "resources/read",
    ]
    assert dict(spans[6].attributes or {}) == {**base("prompts/get", 6), "gen_ai.prompt.name": "greet"}
    assert dict(spans[7].attributes or {}) == {**base("resources/read", 7), "mcp.resource.uri": "demo://readme"}
    assert all(span.status.status_code is StatusCode.UNSET for span in spans)


async def test_unknown_resource_is_an_error_of_its_code(instrumented: InMemorySpanExporter) -> None:
    async with raw_peer(reference_app()) as peer:
        response = await peer.request("resources/read", {"uri": "demo://missing"})
    code = response["error"]["code"]
    span = only(ours(instrumented), "resources/read")
    attributes = dict(span.attributes or {})
    assert attributes["rpc.response.status_code"] == str(code)
    assert attributes["mcp.resource.uri"] == "demo://missing"
    if code in (-32602, -32002):
        assert "error.type" not in attributes
        assert span.status.status_code is StatusCode.UNSET
    else:
        assert attributes["error.type"] == ("_OTHER" if MCP1 and code == 0 else str(code))
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == response["error"]["message"]


async def test_notification_after_initialization(instrumented: InMemorySpanExporter) -> None:
    async with raw_peer(reference_app()) as peer:
        await peer.notify("notifications/roots/list_changed", {"_meta": {"traceparent": TRACEPARENT}})
        await peer.request("ping")
    span = only(ours(instrumented), "notifications/roots/list_changed")
    assert span.kind is SpanKind.SERVER
    assert dict(span.attributes or {}) == base("notifications/roots/list_changed", None)
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == PARENT_ID
    assert format(span.context.trace_id, "032x") == TRACE_ID


async def test_parent_comes_from_the_request_meta(instrumented: InMemorySpanExporter) -> None:
    async with raw_peer(reference_app()) as peer:
        response = await peer.request(
            "tools/call", {"name": "current_trace", "arguments": {}, "_meta": {"traceparent": TRACEPARENT}}
        )
    tool = only(ours(instrumented), "tools/call current_trace")
    assert tool.parent is not None
    assert tool.parent.is_remote
    assert format(tool.parent.span_id, "016x") == PARENT_ID
    assert format(tool.context.trace_id, "032x") == TRACE_ID
    seen_by_handler = response["result"]["content"][0]["text"]
    assert seen_by_handler == f"{TRACE_ID}-{tool.context.span_id:016x}"


async def test_handler_exception(instrumented: InMemorySpanExporter) -> None:
    async with raw_peer(raising_lowlevel_app()) as peer:
        response = await peer.request("resources/read", {"uri": "demo://anything"})
    assert response["error"]["code"] == 0
    span = only(ours(instrumented), "resources/read")
    attributes = dict(span.attributes or {})
    assert span.status.status_code is StatusCode.ERROR
    if MCP1:  # the 1.x SDK answers code 0 and keeps the exception to itself
        assert attributes["error.type"] == "_OTHER"
        assert attributes["rpc.response.status_code"] == "0"
        assert span.status.description == "the disk is on fire"
    else:
        assert attributes["error.type"] == "RuntimeError"
        assert span.status.description == "the disk is on fire"
        assert [event.name for event in span.events] == ["exception"]


async def bad_meta_answers(app: Any) -> list[dict[str, Any]]:
    answers = []
    async with raw_peer(app) as peer:
        for meta in BAD_METAS + USABLE_WITH_BAD_NEIGHBOURS:
            params: dict[str, Any] = {"name": "add", "arguments": {"a": 1, "b": 2}, "_meta": meta}
            answers.append(await peer.request("tools/call", params))
            answers.append(await peer.request("ping", {"_meta": meta}))
            await peer.notify("notifications/roots/list_changed", {"_meta": meta})
        answers.append(await peer.request("ping"))
    return answers


async def test_bad_meta_gets_the_same_answers(exporter: InMemorySpanExporter) -> None:
    plain = await bad_meta_answers(reference_app())
    instrumentor = McpInstrumentor()
    instrumentor.instrument()
    try:
        traced = await bad_meta_answers(reference_app())
    finally:
        instrumentor.uninstrument()
    assert traced == plain
    tool_spans = [span for span in ours(exporter) if span.name == "tools/call add"]
    parents = [None if span.parent is None else format(span.parent.span_id, "016x") for span in tool_spans]
    usable = [PARENT_ID] * len(USABLE_WITH_BAD_NEIGHBOURS)
    if MCP1:  # 1.x answers a non-object `_meta` in its receive loop, before any handler: no span
        answered = sum(1 for answer in plain[: 2 * len(BAD_METAS) : 2] if "result" in answer)
        assert parents == [None] * answered + usable
    else:
        assert parents == [None] * len(BAD_METAS) + usable


@pytest.mark.skipif(MCP1, reason="mcp 1.x has no tracing of its own")
async def test_sdk_server_spans_are_replaced_and_come_back(exporter: InMemorySpanExporter) -> None:
    async def call() -> None:
        async with raw_peer(reference_app()) as peer:
            await peer.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})

    def server_spans() -> list[tuple[str, str]]:
        return [
            (span.name, span.instrumentation_scope.name if span.instrumentation_scope else "")
            for span in exporter.get_finished_spans()
            if span.kind is SpanKind.SERVER
        ]

    instrumentor = McpInstrumentor()
    instrumentor.instrument()
    await call()
    ours_only = server_spans()
    instrumentor.uninstrument()
    exporter.clear()
    await call()
    sdk_only = server_spans()

    mine, sdk = "opentelemetry_instrumentation_mcp", "mcp-python-sdk"
    expected = ["initialize", "notifications/initialized", "tools/call add"]
    assert ours_only == [(name, mine) for name in expected]
    assert sdk_only == [(name, sdk) for name in expected]


async def test_request_before_initialize_is_the_callers_fault(instrumented: InMemorySpanExporter) -> None:
    async with raw_peer(reference_app(), initialize=False) as peer:
        answer = await peer.request("tools/list")
    assert answer["error"]["code"] == -32602
    [span] = ours(instrumented)
    assert span.name == "tools/list"
    assert span.kind is SpanKind.SERVER
    attributes = dict(span.attributes or {})
    assert attributes["rpc.response.status_code"] == "-32602"
    assert "error.type" not in attributes
    assert span.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize(
    ("app", "method", "params"),
    [
        (raising_lowlevel_app, "resources/read", {"uri": "demo://anything"}),
        (reference_app, "resources/read", {"uri": "demo://missing"}),
        (reference_app, "prompts/get", {"name": "nope"}),
    ],
    ids=["handler raises", "unknown resource", "unknown prompt"],
)
async def test_an_error_spans_status_says_what_the_answer_says(
    instrumented: InMemorySpanExporter, app: Any, method: str, params: dict[str, Any]
) -> None:
    """The status description is the JSON-RPC error's message, on the server and on the client."""
    async with raw_peer(app()) as peer:
        error = (await peer.request(method, params))["error"]
    async with sdk_client(app()) as session:
        with pytest.raises(Exception) as refused:  # noqa: PT011 - McpError on 1.x, MCPError on 2.x
            await (session.read_resource(params["uri"]) if method == "resources/read" else session.get_prompt("nope"))
    assert refused.value.error.message == error["message"]  # type: ignore[attr-defined]
    spans = [span for span in ours(instrumented) if span.attributes and span.attributes["mcp.method.name"] == method]
    descriptions = {
        (span.kind, span.status.description) for span in spans if span.status.status_code is StatusCode.ERROR
    }
    assert descriptions >= {(SpanKind.CLIENT, error["message"])}
    server_descriptions = {description for kind, description in descriptions if kind is SpanKind.SERVER}
    assert server_descriptions <= {error["message"]}
