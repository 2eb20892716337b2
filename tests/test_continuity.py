"""Where a server span's parent comes from: `_meta`, the session's `initialize`, HTTP, or nothing.

Precedence per message: the message's own `_meta` (a transport-level context becomes a link); else the
context sent with `initialize`; else the HTTP server span or the HTTP request's headers; else the ambient.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

import pytest
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.propagators.textmap import Getter, Setter, TextMapPropagator, default_getter, default_setter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, NoOpTracerProvider, SpanContext, SpanKind, TraceFlags

from opentelemetry_instrumentation_mcp import IncomingContext, McpInstrumentor
from opentelemetry_instrumentation_mcp._message import SessionState
from support.apps import ADD, reference_app
from support.compat import MCP1, MODERN_VERSION, sse_app, streamable_http_app
from support.peers import SsePeer, StreamableHttpPeer, concurrent_sessions, raw_peer, serving, strays
from support.sessions import connected
from support.spans import Parent, ids, links, named, ours, parent_of

CURRENT_TRACE = {"name": "current_trace", "arguments": {}}
TENANT = {"name": "tenant", "arguments": {}}


def text(answer: dict[str, Any]) -> str:
    return str(answer["result"]["content"][0]["text"])


@pytest.mark.anyio
async def test_initialize_context_is_the_session_parent(instrumented: InMemorySpanExporter) -> None:
    session, own = Parent(), Parent()
    async with raw_peer(reference_app(), initialize=False) as peer:
        await peer.initialize(meta=session.meta())
        for _ in range(20):
            await peer.request("tools/call", ADD)
        await peer.request("tools/call", {**ADD, "_meta": own.meta()})
        await peer.request("tools/call", {**ADD, "_meta": {"traceparent": "00-not-a-valid-one-01"}})
        await peer.request("ping")
    spans = ours(instrumented)
    assert parent_of(named(spans, "initialize")[0]) == ids(session)
    assert parent_of(named(spans, "notifications/initialized")[0]) == ids(session)
    calls = named(spans, "tools/call add")
    assert [parent_of(span) for span in calls] == [ids(session)] * 20 + [ids(own), ids(session)]
    assert parent_of(named(spans, "ping")[0]) == ids(session)
    assert all(span.links == () for span in spans)


@pytest.mark.anyio
async def test_the_guides_carrier_under_meta_headers_is_read(instrumented: InMemorySpanExporter) -> None:
    """Clients written against the tracing guide send `{"_meta": {"headers": {"traceparent": ...}}}`: read when
    `_meta` has no context of its own, the same way (case-sensitive keys, strings only)."""
    session, guide, own = Parent(), Parent(), Parent()
    headers = {"traceparent": guide.traceparent}
    async with raw_peer(reference_app(), initialize=False) as peer:
        await peer.initialize(meta=session.meta())
        await peer.request("tools/call", {**ADD, "_meta": {"headers": headers}})
        await peer.request("tools/call", {**ADD, "_meta": {**own.meta(), "headers": headers}})
        await peer.request("tools/call", {**ADD, "_meta": {"headers": guide.traceparent}})
        await peer.request("tools/call", {**ADD, "_meta": {"headers": {"Traceparent": guide.traceparent}}})
        await peer.notify("notifications/roots/list_changed", {"_meta": {"headers": headers}})
        await peer.request("ping")
    spans = ours(instrumented)
    calls = named(spans, "tools/call add")
    assert [parent_of(span) for span in calls] == [ids(guide), ids(own), ids(session), ids(session)]
    assert parent_of(named(spans, "notifications/roots/list_changed")[0]) == ids(guide)


@pytest.mark.anyio
async def test_sessions_do_not_share_context(instrumented: InMemorySpanExporter) -> None:
    first = Parent()
    async with raw_peer(reference_app(), initialize=False) as one, raw_peer(reference_app(), initialize=False) as two:
        await one.initialize(meta=first.meta())
        await two.initialize()
        await one.request("tools/call", ADD)
        await two.request("tools/call", ADD)
    calls = named(ours(instrumented), "tools/call add")
    assert sorted(map(str, map(parent_of, calls))) == sorted([str(ids(first)), "None"])


@pytest.mark.anyio
async def test_baggage_from_meta_is_visible_to_the_handler(instrumented: InMemorySpanExporter) -> None:
    async with raw_peer(reference_app()) as peer:
        answer = await peer.request("tools/call", {**TENANT, "_meta": Parent().meta(baggage="tenant=acme")})
    assert answer["result"]["content"][0]["text"] == "acme"


@pytest.mark.anyio
async def test_unsampled_parent_is_not_recorded(instrumented: InMemorySpanExporter) -> None:
    unsampled = Parent(sampled=False)
    async with raw_peer(reference_app(), initialize=False) as peer:
        await peer.initialize(meta=unsampled.meta())
        answers = [await peer.request("tools/call", ADD)]
        answers.append(await peer.request("tools/call", {**ADD, "_meta": Parent(sampled=False).meta()}))
        answers.append(await peer.request("tools/call", {**ADD, "_meta": Parent().meta()}))
    assert [answer["result"]["isError"] for answer in answers] == [False, False, False]
    assert [span.name for span in ours(instrumented)] == ["tools/call add"]  # only the sampled one


@pytest.mark.anyio
async def test_with_nothing_recording_the_context_still_passes_on(exporter: InMemorySpanExporter) -> None:
    """No SDK tracer or meter provider: nothing is recorded, and trace context and baggage go on exactly as
    no-op spans would pass them: into the handler, and from a caller's span into `_meta`."""
    session, own = Parent(), Parent()
    instrumentor = McpInstrumentor()
    instrumentor.instrument(tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider())
    try:
        async with raw_peer(reference_app(), initialize=False) as peer:
            await peer.initialize(meta=session.meta())
            inherited = await peer.request("tools/call", CURRENT_TRACE)
            sent = await peer.request("tools/call", {**CURRENT_TRACE, "_meta": own.meta()})
            tenant = await peer.request("tools/call", {**TENANT, "_meta": own.meta(baggage="tenant=acme")})
        async with connected("memory", reference_app()) as client:  # its server task starts outside the span
            with trace.get_tracer("test").start_as_current_span("caller") as caller:
                called = await client.call_tool("current_trace", {})
    finally:
        instrumentor.uninstrument()
    assert [text(answer) for answer in (inherited, sent, tenant)] == [
        "-".join(ids(session)),
        "-".join(ids(own)),
        "acme",
    ]
    context = caller.get_span_context()
    assert called.content[0].text == f"{context.trace_id:032x}-{context.span_id:016x}"
    assert [span.name for span in exporter.get_finished_spans()] == ["caller"]


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["argument", "environment"])
async def test_link_policy(
    exporter: InMemorySpanExporter, instrument: Any, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "argument":
        instrument(incoming_context="link")
    else:
        monkeypatch.setenv("OTEL_PYTHON_MCP_INCOMING_CONTEXT", "LINK")
        instrument()
    session, own = Parent(), Parent()
    async with raw_peer(reference_app(), initialize=False) as peer:
        await peer.initialize(meta=session.meta())
        await peer.request("tools/call", ADD)
        await peer.request("tools/call", {**ADD, "_meta": own.meta()})
    spans = ours(exporter)
    assert all(span.parent is None for span in spans)
    calls = named(spans, "tools/call add")
    assert [links(span) for span in calls] == [[ids(session)], [ids(own)]]
    assert links(named(spans, "initialize")[0]) == [ids(session)]


@pytest.mark.anyio
async def test_ignore_policy(exporter: InMemorySpanExporter, instrument: Any) -> None:
    instrument(incoming_context=IncomingContext.IGNORE)
    async with raw_peer(reference_app(), initialize=False) as peer:
        await peer.initialize(meta=Parent().meta())
        await peer.request("tools/call", {**ADD, "_meta": Parent().meta(baggage="tenant=acme")})
        answer = await peer.request("tools/call", {**TENANT, "_meta": Parent().meta(baggage="tenant=acme")})
    assert answer["result"]["content"][0]["text"] == "None"
    spans = ours(exporter)
    assert [span.name for span in spans] == [
        "initialize",
        "notifications/initialized",
        "tools/call add",
        "tools/call tenant",
    ]
    assert all(span.parent is None and span.links == () for span in spans)


def test_unknown_policy_warns_and_keeps_parent(
    exporter: InMemorySpanExporter,
    instrument: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_MCP_INCOMING_CONTEXT", "trust-me")
    with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_mcp"):
        instrument()
    assert [record.getMessage() for record in caplog.records] == [
        "OTEL_PYTHON_MCP_INCOMING_CONTEXT='trust-me' is not usable (not one of parent, link, ignore); using the default"
    ]


@pytest.mark.anyio
async def test_session_state_goes_with_the_session(instrumented: InMemorySpanExporter) -> None:
    def states() -> int:
        gc.collect()
        return sum(1 for item in gc.get_objects() if isinstance(item, SessionState))

    before = states()
    for _ in range(30):
        async with raw_peer(reference_app(), initialize=False) as peer:
            await peer.initialize(meta=Parent().meta())
            await peer.request("tools/call", ADD)
    assert states() == before


# --- HTTP ---------------------------------------------------------------------------------------------


def http_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.kind is SpanKind.SERVER]


def test_http_headers_of_each_request_then_of_initialize(instrumented: InMemorySpanExporter) -> None:
    session, header, own = Parent(), Parent(), Parent()
    with serving(streamable_http_app(reference_app(), stateless=False, json_response=True)) as url:
        peer = StreamableHttpPeer(url)
        peer.initialize(traceparent=session.traceparent)
        peer.request("tools/call", ADD)
        peer.request("tools/call", ADD, traceparent=header.traceparent)  # a later turn's request: its own context
        peer.request("tools/call", {**ADD, "_meta": own.meta()}, traceparent=header.traceparent)
        session_id = peer.session_id
        peer.close()
    spans = ours(instrumented)
    calls = named(spans, "tools/call add")
    assert [parent_of(span) for span in calls] == [ids(session), ids(header), ids(own)]
    assert [links(span) for span in calls] == [[], [], [ids(header)]]
    assert parent_of(named(spans, "initialize")[0]) == ids(session)
    assert {dict(span.attributes or {}).get("mcp.session.id") for span in spans} == {session_id}


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
def test_a_notifications_own_header_comes_before_the_sessions(
    instrumented: InMemorySpanExporter, transport: str
) -> None:
    """As for requests: the HTTP request that carried a notification, then the session's `initialize` context (mcp
    1.x drops a notification's HTTP request in its receive loop; it is read there first)."""
    session, header = Parent(), Parent()
    app = (
        sse_app(reference_app())
        if transport == "sse"
        else streamable_http_app(reference_app(), stateless=False, json_response=True)
    )
    with serving(app) as url:
        peer: StreamableHttpPeer | SsePeer = StreamableHttpPeer(url) if transport != "sse" else SsePeer(url)
        peer.initialize(traceparent=session.traceparent)
        peer.notify("notifications/roots/list_changed", traceparent=header.traceparent)
        peer.request("ping")
        peer.notify("notifications/roots/list_changed")
        peer.request("ping")
        peer.close()
    spans = ours(instrumented)
    changes = named(spans, "notifications/roots/list_changed")
    assert sorted(map(str, map(parent_of, changes))) == sorted([str(ids(header)), str(ids(session))])
    assert parent_of(named(spans, "notifications/initialized")[0]) == ids(session)
    assert all(dict(span.attributes or {})["client.address"] == "127.0.0.1" for span in changes)


def test_stateless_http_uses_each_requests_headers(instrumented: InMemorySpanExporter) -> None:
    first, second = Parent(), Parent()
    with serving(streamable_http_app(reference_app(), stateless=True, json_response=True)) as url:
        peer = StreamableHttpPeer(url)
        peer.initialize(traceparent=Parent().traceparent)
        peer.request("tools/call", ADD, traceparent=first.traceparent)
        peer.request("tools/call", ADD)
        peer.request("tools/call", ADD, traceparent=second.traceparent)
        peer.close()
    spans = ours(instrumented)
    calls = named(spans, "tools/call add")
    assert [parent_of(span) for span in calls] == [ids(first), None, ids(second)]
    assert all("mcp.session.id" not in (span.attributes or {}) for span in spans)


class RequestTracePropagator(TextMapPropagator):
    """A vendor's propagator, not W3C's: the context in one `X-Request-Trace` header, `{trace id}:{span id}`."""

    def extract(self, carrier: Any, context: Context | None = None, getter: Getter[Any] = default_getter) -> Context:
        values = getter.get(carrier, "X-Request-Trace")
        if not values:
            return context or Context()
        trace_id, span_id = values[0].split(":")
        span = NonRecordingSpan(SpanContext(int(trace_id, 16), int(span_id, 16), True, TraceFlags(1)))
        return trace.set_span_in_context(span, context)

    def inject(self, carrier: Any, context: Context | None = None, setter: Setter[Any] = default_setter) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        setter.set(carrier, "X-Request-Trace", f"{span_context.trace_id:032x}:{span_context.span_id:016x}")

    @property
    def fields(self) -> set[str]:
        return {"X-Request-Trace"}


def test_http_headers_are_read_by_the_propagators_fields(instrumented: InMemorySpanExporter) -> None:
    """Headers are read only when one of them is a field the global propagators write: theirs, whatever its case."""
    sent = Parent()
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(RequestTracePropagator())
    try:
        with serving(streamable_http_app(reference_app(), stateless=True, json_response=True)) as url:
            peer = StreamableHttpPeer(url)
            peer.initialize()
            peer.request("tools/call", ADD, traceparent=Parent().traceparent)
            peer.request("tools/call", ADD, **{"X-Request-Trace": f"{sent.trace_id}:{sent.span_id}"})
            peer.close()
    finally:
        propagate.set_global_textmap(previous)
    calls = named(ours(instrumented), "tools/call add")
    assert [parent_of(span) for span in calls] == [None, ids(sent)]


def test_http_server_span_of_an_asgi_instrumentation(instrumented: InMemorySpanExporter) -> None:
    header, own = Parent(), Parent()
    asgi = OpenTelemetryMiddleware(streamable_http_app(reference_app(), stateless=False, json_response=True))
    with serving(asgi) as url:
        peer = StreamableHttpPeer(url)
        peer.initialize()
        peer.request("tools/call", ADD, traceparent=header.traceparent)
        peer.request("tools/call", {**ADD, "_meta": own.meta()}, traceparent=header.traceparent)
        peer.close()
    spans = http_spans(instrumented)
    by_id = {span.context.span_id: span for span in spans}
    first, second = named(ours(instrumented), "tools/call add")
    http_parent = by_id[first.parent.span_id] if first.parent else None
    assert http_parent is not None
    assert http_parent.name.startswith("POST")
    assert parent_of(http_parent) == ids(header)
    assert parent_of(second) == ids(own)
    [(link_trace, link_span)] = links(second)
    assert by_id[int(link_span, 16)].name.startswith("POST")
    assert link_trace == header.trace_id


@pytest.mark.parametrize("asgi", [False, True], ids=["plain", "asgi"])
def test_sse_requests_headers_then_the_sessions(instrumented: InMemorySpanExporter, asgi: bool) -> None:
    session, header = Parent(), Parent()
    app = sse_app(reference_app())
    with serving(OpenTelemetryMiddleware(app) if asgi else app) as url:
        peer = SsePeer(url)
        peer.initialize(traceparent=session.traceparent)
        peer.request("tools/call", ADD)
        peer.request("tools/call", ADD, traceparent=header.traceparent)
        peer.close()
    first, second = named(ours(instrumented), "tools/call add")
    assert parent_of(first) == ids(session)
    if not asgi:
        assert parent_of(second) == ids(header)
        return
    post = {span.context.span_id: span for span in http_spans(instrumented)}[second.parent.span_id]  # type: ignore[union-attr]
    assert post.name.startswith("POST")
    assert parent_of(post) == ids(header)


def test_a_request_without_context_under_an_asgi_span_keeps_the_sessions(instrumented: InMemorySpanExporter) -> None:
    session = Parent()
    asgi = OpenTelemetryMiddleware(streamable_http_app(reference_app(), stateless=False, json_response=True))
    with serving(asgi) as url:
        peer = StreamableHttpPeer(url)
        peer.initialize(traceparent=session.traceparent)
        peer.request("tools/call", ADD)  # no header: the ASGI span starts a new trace
        peer.close()
    [call] = named(ours(instrumented), "tools/call add")
    assert parent_of(call) == ids(session)
    [(link_trace, link_span)] = links(call)
    post = {span.context.span_id: span for span in http_spans(instrumented)}[int(link_span, 16)]
    assert post.name.startswith("POST")
    assert post.parent is None
    assert link_trace == format(post.context.trace_id, "032x")


@pytest.mark.skipif(MCP1, reason="mcp 1.x serves only the initialize era")
def test_modern_http_request_without_meta_takes_its_headers(instrumented: InMemorySpanExporter) -> None:
    header = Parent()
    envelope = {
        "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
        "io.modelcontextprotocol/clientInfo": {"name": "modern", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    with serving(streamable_http_app(reference_app(), stateless=False, json_response=True)) as url:
        peer = StreamableHttpPeer(url, {"mcp-protocol-version": MODERN_VERSION})
        peer.request("tools/list", {"_meta": envelope}, traceparent=header.traceparent, **{"mcp-method": "tools/list"})
        peer.request("tools/list", {"_meta": envelope}, **{"mcp-method": "tools/list"})
    first, second = named(ours(instrumented), "tools/list")
    assert parent_of(first) == ids(header)
    assert parent_of(second) is None


def test_concurrent_http_sessions_stay_in_their_own_traces(instrumented: InMemorySpanExporter) -> None:
    with serving(streamable_http_app(reference_app(), stateless=False, json_response=True)) as url:
        trace_of_session = concurrent_sessions(url, sessions=20, calls=10)
    calls = named(ours(instrumented), "tools/call add")
    assert len(calls) == 20 * 10
    assert strays(calls, trace_of_session) == []
