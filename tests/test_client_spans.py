"""CLIENT spans of the SDK's own client, injection into `_meta`, and traffic from the server to the client."""

from __future__ import annotations

import copy
from typing import Any

import anyio
import pytest
from mcp import types
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from opentelemetry_instrumentation_mcp import McpInstrumentor
from support.apps import reference_app
from support.compat import MCP1, call_tool_with_meta, is_error, read_timeout
from support.sessions import sdk_client, wire_client
from support.spans import PARENT_ID, TRACE_ID, TRACEPARENT, child_of, ids_of, one, ours

pytestmark = pytest.mark.anyio


def by_kind(spans: list[ReadableSpan], kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in spans if span.kind is kind]


async def test_every_message_has_a_client_span_whose_server_span_is_its_child(
    instrumented: InMemorySpanExporter,
) -> None:
    async with sdk_client(reference_app()) as session:
        await session.call_tool("add", {"a": 1, "b": 2})
        await session.send_ping()
        await session.send_roots_list_changed()
        await session.send_ping()  # the notification above is handled by the time this is answered
    spans = ours(instrumented)
    clients, servers = by_kind(spans, SpanKind.CLIENT), by_kind(spans, SpanKind.SERVER)
    assert sorted(span.name for span in clients) == sorted(span.name for span in servers)
    assert {
        "initialize",
        "notifications/initialized",
        "tools/call add",
        "ping",
        "notifications/roots/list_changed",
    } <= {span.name for span in clients}
    for client in clients:
        children = [span for span in servers if span.name == client.name and child_of(span, client)]
        assert len(children) == 1, client.name
        assert client.parent is None
    call = one(spans, "tools/call add", SpanKind.CLIENT)
    assert dict(call.attributes or {}) == {
        "mcp.method.name": "tools/call",
        "jsonrpc.request.id": dict(one(spans, "tools/call add", SpanKind.SERVER).attributes or {})[
            "jsonrpc.request.id"
        ],
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "mcp.protocol.version": dict(one(spans, "initialize", SpanKind.CLIENT).attributes or {})[
            "mcp.protocol.version"
        ],
    }
    assert "jsonrpc.request.id" not in (one(spans, "notifications/initialized", SpanKind.CLIENT).attributes or {})
    # only our spans: on mcp 2.x the SDK's own `MCP send` spans are replaced
    assert [span.name for span in instrumented.get_finished_spans() if span not in spans] == ["add.compute"]


async def test_client_errors(instrumented: InMemorySpanExporter) -> None:
    async with sdk_client(reference_app()) as session:
        assert is_error(await session.call_tool("explode", {}))
        with pytest.raises(Exception) as refused:  # noqa: PT011 - McpError on 1.x, MCPError on 2.x
            await session.read_resource("demo://missing")
    spans = ours(instrumented)
    tool = one(spans, "tools/call explode", SpanKind.CLIENT)
    assert (dict(tool.attributes or {})["error.type"], tool.status.status_code) == ("tool_error", StatusCode.ERROR)
    read = one(spans, "resources/read", SpanKind.CLIENT)
    code = str(refused.value.error.code)  # type: ignore[attr-defined]
    attributes = dict(read.attributes or {})
    assert (attributes["error.type"], attributes["rpc.response.status_code"]) == (code, code)
    assert attributes["mcp.resource.uri"] == "demo://missing"
    assert read.status.status_code is StatusCode.ERROR  # every JSON-RPC error is an error on the client


async def test_timeout_records_the_exception_class(instrumented: InMemorySpanExporter) -> None:
    async with sdk_client(reference_app()) as session:  # the timeout is the call's: initialize may be slow
        with pytest.raises(Exception) as timed_out:  # noqa: PT011
            await session.call_tool("sleep", {"seconds": 3}, read_timeout_seconds=read_timeout(0.2))
    span = one(ours(instrumented), "tools/call sleep", SpanKind.CLIENT)
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == type(timed_out.value).__qualname__
    assert "rpc.response.status_code" not in attributes
    assert span.status.status_code is StatusCode.ERROR


def sent_context(message: dict[str, Any]) -> tuple[str, str]:
    """The trace and span ids a message's `_meta.traceparent` carries."""
    _, trace_id, span_id, _ = message["params"]["_meta"]["traceparent"].split("-")
    return trace_id, span_id


async def test_a_frameworks_context_in_meta_is_replaced_by_ours_and_other_keys_stay(
    instrumented: InMemorySpanExporter,
) -> None:
    meta = {"traceparent": TRACEPARENT, "tracestate": "fw=1", "baggage": "fw=1", "note": {"mine": [1, 2]}}
    before = copy.deepcopy(meta)
    async with wire_client() as (session, wire):
        with trace.get_tracer("agent").start_as_current_span("agent turn") as turn:
            await call_tool_with_meta(session, "add", {"a": 1}, meta)
    assert meta == before
    sent = wire.last("tools/call")["params"]["_meta"]
    client = one(ours(instrumented), "tools/call add", SpanKind.CLIENT)
    assert client.parent is not None
    assert client.parent.span_id == turn.get_span_context().span_id
    assert sent_context(wire.last("tools/call")) == ids_of(client)
    assert {key: value for key, value in sent.items() if key != "traceparent"} == {"note": {"mine": [1, 2]}}


async def test_a_hand_propagated_context_is_continued_when_no_span_is_current(
    instrumented: InMemorySpanExporter,
) -> None:
    async with wire_client() as (session, wire):
        await call_tool_with_meta(session, "add", {"a": 1}, {"traceparent": TRACEPARENT, "note": 1})
    client = one(ours(instrumented), "tools/call add", SpanKind.CLIENT)
    assert client.parent is not None
    assert (format(client.context.trace_id, "032x"), format(client.parent.span_id, "016x")) == (TRACE_ID, PARENT_ID)
    assert sent_context(wire.last("tools/call")) == ids_of(client)
    assert wire.last("tools/call")["params"]["_meta"]["note"] == 1


async def test_a_context_in_the_guides_carrier_is_continued_and_left_as_written(
    instrumented: InMemorySpanExporter,
) -> None:
    """`_meta.headers`, where the tracing guide puts the context: read as a hand-propagated context, never written."""
    headers = {"traceparent": TRACEPARENT, "x-other": "kept"}
    async with wire_client() as (session, wire):
        await call_tool_with_meta(session, "add", {"a": 1}, {"headers": headers})
    client = one(ours(instrumented), "tools/call add", SpanKind.CLIENT)
    assert client.parent is not None
    assert (format(client.context.trace_id, "032x"), format(client.parent.span_id, "016x")) == (TRACE_ID, PARENT_ID)
    assert wire.last("tools/call")["params"]["_meta"]["headers"] == headers
    assert sent_context(wire.last("tools/call")) == ids_of(client)


async def test_the_server_span_is_the_child_of_our_client_span_whatever_the_caller_put_in_meta(
    instrumented: InMemorySpanExporter,
) -> None:
    async with sdk_client(reference_app()) as session:
        with trace.get_tracer("agent").start_as_current_span("agent turn"):
            result = await call_tool_with_meta(session, "current_trace", {}, {"traceparent": TRACEPARENT})
    spans = ours(instrumented)
    client = one(spans, "tools/call current_trace", SpanKind.CLIENT)
    server = one(spans, "tools/call current_trace", SpanKind.SERVER)
    assert child_of(server, client)
    assert result.content[0].text == f"{ids_of(server)[0]}-{ids_of(server)[1]}"


async def test_excluded_methods_still_carry_the_current_context(instrument: Any) -> None:
    exporter = instrument(excluded_methods=["tools/list"])
    async with wire_client() as (session, wire):
        with trace.get_tracer("agent").start_as_current_span("agent turn") as turn:
            await session.list_tools()
    assert not [span for span in ours(exporter) if span.name == "tools/list"]
    context = turn.get_span_context()
    assert sent_context(wire.last("tools/list")) == (format(context.trace_id, "032x"), format(context.span_id, "016x"))


async def test_a_suppressed_request_goes_as_the_sdk_alone_sends_it(instrumented: InMemorySpanExporter) -> None:
    """Suppressed, we make no span and send the request as the SDK would without us: mcp 2.x injects the current
    context itself (its own tracing seam), mcp 1.x sends none."""
    async with wire_client() as (session, wire):
        with trace.get_tracer("agent").start_as_current_span("agent turn") as turn, suppress_instrumentation():
            await session.list_tools()
    assert "tools/list" not in [span.name for span in ours(instrumented)]
    sent = wire.last("tools/list")
    if MCP1:
        assert "_meta" not in (sent.get("params") or {})
    else:
        context = turn.get_span_context()
        assert sent_context(sent) == (format(context.trace_id, "032x"), format(context.span_id, "016x"))


async def sampling(context: Any, params: Any) -> Any:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="4"), model="test-model"
    )


async def roots(context: Any) -> Any:
    return types.ListRootsResult(roots=[types.Root(uri="file:///tmp", name="tmp")])  # type: ignore[arg-type]


async def test_server_to_client_traffic_is_traced_both_ways(instrumented: InMemorySpanExporter) -> None:
    logged: list[Any] = []

    async def log(params: Any) -> None:
        logged.append(params)

    async with sdk_client(
        reference_app(), sampling_callback=sampling, list_roots_callback=roots, logging_callback=log
    ) as session:
        result = await session.call_tool("consult", {})
    assert result.content[0].text == "1 roots; the client says 4"
    assert len(logged) == 1
    spans = ours(instrumented)
    tool = one(spans, "tools/call consult", SpanKind.SERVER)
    assert child_of(tool, one(spans, "tools/call consult", SpanKind.CLIENT))
    for method in ("notifications/message", "roots/list", "sampling/createMessage"):
        sent = one(spans, method, SpanKind.CLIENT)
        received = one(spans, method, SpanKind.SERVER)
        assert child_of(sent, tool), method
        assert child_of(received, sent), method
    assert "jsonrpc.request.id" in (one(spans, "roots/list", SpanKind.CLIENT).attributes or {})


async def test_a_notification_from_a_tool_reaches_the_client_in_the_trace(instrumented: InMemorySpanExporter) -> None:
    async with sdk_client(reference_app()) as session:
        await session.call_tool("touch", {"uri": "demo://readme"})
        await session.send_ping()  # the client has handled the notification by the time this is answered
    spans = ours(instrumented)
    tool = one(spans, "tools/call touch", SpanKind.SERVER)
    sent = one(spans, "notifications/resources/updated", SpanKind.CLIENT)
    received = one(spans, "notifications/resources/updated", SpanKind.SERVER)
    assert child_of(sent, tool)
    assert child_of(received, sent)
    for span in (sent, received):
        attributes = dict(span.attributes or {})
        assert attributes["mcp.resource.uri"] == "demo://readme"
        assert "jsonrpc.request.id" not in attributes


@pytest.mark.skipif(MCP1, reason="mcp 1.x has no tracing of its own")
async def test_sdk_client_spans_come_back_after_uninstrument(exporter: InMemorySpanExporter) -> None:
    instrumentor = McpInstrumentor()
    instrumentor.instrument()
    instrumentor.uninstrument()
    async with sdk_client(reference_app()) as session:
        await session.call_tool("add", {"a": 1, "b": 2})
    names = [(span.name, span.kind) for span in exporter.get_finished_spans()]
    assert ("MCP send tools/call add", SpanKind.CLIENT) in names
    assert ("tools/call add", SpanKind.SERVER) in names
    assert ours(exporter) == []


@pytest.mark.skipif(not MCP1, reason="mcp 2.x's own methods send bare request models: every test covers them")
async def test_a_bare_request_model_is_spanned_and_injected(instrumented: InMemorySpanExporter) -> None:
    """FastMCP 2 and 3 hand 1.x's `send_request` a `ReadResourceRequest`, not a `ClientRequest`."""
    request = types.ReadResourceRequest(
        method="resources/read",
        params=types.ReadResourceRequestParams(uri="demo://readme"),  # type: ignore[arg-type]
    )
    async with sdk_client(reference_app()) as session:
        result = await session.send_request(request, types.ReadResourceResult)  # type: ignore[arg-type]
    assert result.contents[0].text  # type: ignore[union-attr]
    spans = ours(instrumented)
    client = one(spans, "resources/read", SpanKind.CLIENT)
    assert dict(client.attributes or {})["mcp.resource.uri"] == "demo://readme"
    assert child_of(one(spans, "resources/read", SpanKind.SERVER), client)


@pytest.mark.skipif(MCP1, reason="1.x numbers requests itself before our span starts")
async def test_the_request_id_is_the_one_sent(instrumented: InMemorySpanExporter) -> None:
    """mcp 2.x's dispatcher allocates the id as it sends, skipping ids a caller's request holds: the span carries the
    id that went on the wire."""
    async with wire_client() as (session, wire):
        supplied = session._dispatcher._next_id + 1
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: session._dispatcher.send_raw_request("ping", None, {"request_id": supplied}))
            group.start_soon(session.send_ping)
    sent = {sent_context(message)[1]: message["id"] for message in wire.sent if message.get("method") == "ping"}
    spans = [span for span in ours(instrumented) if span.name == "ping"]
    assert sorted(sent.values()) == [supplied, supplied + 1]
    assert {ids_of(span)[1]: int(dict(span.attributes or {})["jsonrpc.request.id"]) for span in spans} == sent


async def test_a_request_span_starts_with_the_id_it_is_sent_with() -> None:
    """The id is known as the span starts (a sampler decides on it), read as the send starts, not as it was called:
    a send awaited after another one took the next id carries its own."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Sampler, SamplingResult

    started: list[str] = []

    class IdsAtStart(Sampler):
        def should_sample(  # noqa: PLR0917 - the SDK's signature
            self,
            parent_context: Any,
            trace_id: int,
            name: str,
            kind: Any = None,
            attributes: Any = None,
            links: Any = None,
            trace_state: Any = None,
        ) -> SamplingResult:
            if name == "ping":
                started.append((attributes or {}).get("jsonrpc.request.id"))
            return ALWAYS_ON.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

        def get_description(self) -> str:
            return "IdsAtStart"

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=IdsAtStart())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = McpInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        async with wire_client() as (session, wire):
            if MCP1:
                later = session.send_request(types.ClientRequest(types.PingRequest(method="ping")), types.EmptyResult)
            else:
                later = session._dispatcher.send_raw_request("ping", None)
            await session.send_ping()
            await later
    finally:
        instrumentor.uninstrument()
    sent = [message for message in wire.sent if message.get("method") == "ping"]
    assert started == [str(message["id"]) for message in sent]
    ids = {sent_context(message)[1]: str(message["id"]) for message in sent}
    spans = [span for span in exporter.get_finished_spans() if span.name == "ping"]
    assert {ids_of(span)[1]: dict(span.attributes or {})["jsonrpc.request.id"] for span in spans} == ids


@pytest.mark.skipif(MCP1, reason="mcp 2.x's in-process client")
async def test_in_process_requests_have_their_ids(instrumented: InMemorySpanExporter) -> None:
    from mcp import Client

    async with Client(reference_app()) as client:
        await client.call_tool("add", {"a": 1, "b": 2})
    spans = ours(instrumented)
    client_span = one(spans, "tools/call add", SpanKind.CLIENT)
    server_span = one(spans, "tools/call add", SpanKind.SERVER)
    request_id = dict(client_span.attributes or {})["jsonrpc.request.id"]
    assert request_id == dict(server_span.attributes or {})["jsonrpc.request.id"]
    # in process the context is the current one: the server's span is still the child of the client's
    assert child_of(server_span, client_span)


@pytest.mark.skipif(MCP1, reason="mcp 2.x's in-process dispatch")
async def test_in_process_messages_go_as_written(instrumented: InMemorySpanExporter) -> None:
    """In process nothing carries the context (the peer handles a message in the sender's task): params go exactly
    as written, absent ones stay absent, in both directions."""
    from mcp.shared.direct_dispatcher import create_direct_dispatcher_pair

    received: list[tuple[str, Any]] = []

    async def server_on_request(ctx: Any, method: str, params: Any) -> dict[str, Any]:
        received.append((method, params))
        await ctx.send_raw_request("ping", None)  # back to the client, through the dispatch context
        await ctx.notify("notifications/message", None)
        return {}

    async def client_on_request(ctx: Any, method: str, params: Any) -> dict[str, Any]:
        received.append((method, params))
        return {}

    async def on_notify(ctx: Any, method: str, params: Any) -> None:
        received.append((method, params))

    client, server = create_direct_dispatcher_pair()
    async with anyio.create_task_group() as group:
        await group.start(server.run, server_on_request, on_notify)
        await group.start(client.run, client_on_request, on_notify)
        with trace.get_tracer("agent").start_as_current_span("agent turn"):
            await client.send_raw_request("tools/list", None)
            await client.notify("notifications/initialized", None)
            await client.send_raw_request("tools/call", {"name": "add"})
        client.close()
        server.close()
    assert received == [
        ("tools/list", None),
        ("ping", None),
        ("notifications/message", None),
        ("notifications/initialized", None),
        ("tools/call", {"name": "add"}),
        ("ping", None),
        ("notifications/message", None),
    ]
    assert {span.name for span in ours(instrumented)} >= {"tools/list", "ping", "tools/call add"}


async def test_a_message_with_nothing_to_carry_goes_as_the_sdk_writes_it(instrument: Any) -> None:
    """No context to send (`OTEL_PROPAGATORS=none`): a message goes exactly as the uninstrumented SDK sends it.

    (mcp 1.x and 2.1+ send a ping without params; mcp 2.0 always sends an empty `_meta`.)
    """

    async def sent() -> list[dict[str, Any]]:
        async with wire_client() as (session, wire):
            with trace.get_tracer("agent").start_as_current_span("agent turn"):
                await session.send_ping()
                await session.send_roots_list_changed()
        return [wire.last("ping"), wire.last("notifications/roots/list_changed")]

    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([]))
    try:
        as_written = await sent()
        instrument()
        assert await sent() == as_written
    finally:
        propagate.set_global_textmap(previous)
    assert "params" not in as_written[1]
