"""The whole path: an agent's client, the MCP server's tool, what the tool calls next (HTTP, another MCP server),
in one trace; in process and across processes started under `opentelemetry-instrument`."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from opentelemetry_instrumentation_mcp import McpInstrumentor
from opentelemetry_instrumentation_mcp.viewer import OtlpReceiver, ReceivedSpan
from support.apps import reference_app
from support.compat import MCP1, read_timeout, sse_app, streamable_http_app
from support.peers import RequestRecorder, StreamableHttpPeer, serving
from support.processes import HttpServer, demo_module, otlp_env
from support.sessions import connected, stdio_parameters
from support.spans import child_of, one, ours

SearchApi = demo_module("search_api").SearchApi
MINE = "opentelemetry_instrumentation_mcp"


@pytest.mark.anyio
async def test_nested_mcp_in_process(instrumented: InMemorySpanExporter) -> None:
    async with connected("memory", reference_app()) as session:
        result = await session.call_tool("delegate", {"transport": "memory"})
    assert result.content[0].text == "inner says 42"
    spans = ours(instrumented)
    outer_client = one(spans, "tools/call delegate", SpanKind.CLIENT)
    outer_server = one(spans, "tools/call delegate", SpanKind.SERVER)
    inner_client = one(spans, "tools/call add", SpanKind.CLIENT)
    inner_server = one(spans, "tools/call add", SpanKind.SERVER)
    assert child_of(outer_server, outer_client)
    assert child_of(inner_client, outer_server)
    assert child_of(inner_server, inner_client)
    inner_setup = [span.name for span in spans if span.kind is SpanKind.CLIENT and child_of(span, outer_server)]
    assert inner_setup[:2] == ["initialize", "notifications/initialized"]


HTTP_LIBRARIES = {
    "httpx": ("opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor"),
    "httpx2": ("opentelemetry.instrumentation.httpx", "HTTPX2ClientInstrumentor"),
    "requests": ("opentelemetry.instrumentation.requests", "RequestsInstrumentor"),
    "aiohttp": ("opentelemetry.instrumentation.aiohttp_client", "AioHttpClientInstrumentor"),
}


@pytest.fixture(params=sorted(HTTP_LIBRARIES))
def http_library(
    request: pytest.FixtureRequest, instrumented: InMemorySpanExporter, tracer_provider: TracerProvider
) -> Iterator[str]:
    library: str = request.param
    module, name = HTTP_LIBRARIES[library]
    try:
        importlib.import_module(library)
        instrumentor = getattr(importlib.import_module(module), name)()
    except (ImportError, AttributeError):
        pytest.skip(f"{library} or its instrumentation is not installed in this environment")
    instrumentor.instrument(tracer_provider=tracer_provider)
    yield library
    instrumentor.uninstrument()


@pytest.mark.anyio
async def test_downstream_http_continues_the_tool_span(instrumented: InMemorySpanExporter, http_library: str) -> None:
    with SearchApi(delay=0) as api:
        async with connected("memory", reference_app()) as session:
            result = await session.call_tool("fetch", {"url": api.url, "library": http_library})
    assert result.content[0].text == "200"
    [headers] = api.received
    _, trace_id, parent_id, _ = headers["traceparent"].split("-")
    tool = one(ours(instrumented), "tools/call fetch", SpanKind.SERVER)
    [http] = [span for span in instrumented.get_finished_spans() if span.context.span_id == int(parent_id, 16)]
    assert http.kind is SpanKind.CLIENT
    assert child_of(http, tool)
    assert trace_id == format(tool.context.trace_id, "032x")


# --- across processes ------------------------------------------------------------------------------------


async def converse(transport: str, target: Any, inner: str, exported: Any = None) -> list[str]:
    """Call `add`, then `delegate` to an inner server; `exported` waits, connected, for the server's export."""
    async with connected(transport, target) as session:
        answers = [(await session.call_tool("add", {"a": 1, "b": 2})).content[0].text]
        answers.append((await session.call_tool("delegate", {"transport": transport, "url": inner})).content[0].text)
        if exported is not None:  # mcp < 1.11 clients kill a stdio server on exit
            await anyio.to_thread.run_sync(exported)
    return answers


def assert_one_trace(client_spans: list[ReadableSpan], server_spans: list[ReceivedSpan], transport: str) -> None:
    """client CLIENT `tools/call delegate` -> outer SERVER -> outer CLIENT `tools/call add` -> inner SERVER."""
    outer_client = one(client_spans, "tools/call delegate", SpanKind.CLIENT)
    trace_id, client_id = format(outer_client.context.trace_id, "032x"), format(outer_client.context.span_id, "016x")
    mcp_spans = [span for span in server_spans if span.scope_name == MINE and span.trace_id == trace_id]

    def only(name: str, kind: SpanKind, service: str) -> ReceivedSpan:
        [span] = [s for s in mcp_spans if (s.name, s.kind, s.resource["service.name"]) == (name, kind, service)]
        return span

    outer = only("tools/call delegate", SpanKind.SERVER, "outer-server")
    inner_call = only("tools/call add", SpanKind.CLIENT, "outer-server")
    inner = only("tools/call add", SpanKind.SERVER, "inner-server")
    assert outer.parent_span_id == client_id
    assert inner_call.parent_span_id == outer.span_id
    assert inner.parent_span_id == inner_call.span_id
    expected = "pipe" if transport == "stdio" else "tcp"
    for span in (outer, inner_call, inner):
        assert span.attributes["network.transport"] == expected
    assert dict(outer_client.attributes or {})["network.transport"] == expected
    if transport == "http":
        assert inner_call.attributes["server.address"] == "127.0.0.1"
        assert "mcp.session.id" in inner_call.attributes
        assert dict(outer_client.attributes or {})["mcp.session.id"] == outer.attributes["mcp.session.id"]
    # exactly one span per message per side: none of the mcp 2.x SDK's own beside ours
    assert [span.name for span in server_spans if span.scope_name == "mcp-python-sdk"] == []
    server_side = [
        (span.name, span.kind, span.resource["service.name"], span.attributes.get("jsonrpc.request.id"))
        for span in mcp_spans
    ]
    assert len(server_side) == len(set(server_side))


def test_across_processes_over_stdio(
    instrumented: InMemorySpanExporter, receiver: OtlpReceiver, tracer_provider: TracerProvider
) -> None:
    receiver.clear()
    traced = stdio_parameters(instrumented=True, service="outer-server", otel=otlp_env(receiver.endpoint))
    answers = anyio.run(
        converse,
        "stdio",
        traced,
        "",
        lambda: receiver.wait_for_spans(
            lambda span: span.name == "tools/call delegate" and span.kind is SpanKind.SERVER
        ),
    )
    assert_one_trace(ours(instrumented), receiver.spans, "stdio")
    McpInstrumentor().uninstrument()
    try:
        plain = anyio.run(converse, "stdio", stdio_parameters(instrumented=False, service="plain"), "")
    finally:
        McpInstrumentor().instrument(tracer_provider=tracer_provider)
    assert answers == plain == ["3", "inner says 42"]


def test_across_processes_over_http(
    instrumented: InMemorySpanExporter, receiver: OtlpReceiver, tracer_provider: TracerProvider
) -> None:
    receiver.clear()
    env = otlp_env(receiver.endpoint)
    inner = HttpServer(env, instrumented=True, service="inner-server")
    outer = HttpServer(env, instrumented=True, service="outer-server")
    try:
        answers = anyio.run(converse, "http", outer.url, inner.url)
    finally:
        outer.stop()
        inner.stop()
    receiver.wait_for_spans(
        lambda span: span.name == "tools/call add" and span.resource["service.name"] == "inner-server"
    )
    assert_one_trace(ours(instrumented), receiver.spans, "http")
    plain_inner = HttpServer({}, instrumented=False, service="plain")
    plain_outer = HttpServer({}, instrumented=False, service="plain")
    McpInstrumentor().uninstrument()
    try:
        plain = anyio.run(converse, "http", plain_outer.url, plain_inner.url)
    finally:
        McpInstrumentor().instrument(tracer_provider=tracer_provider)
        plain_outer.stop()
        plain_inner.stop()
    assert answers == plain == ["3", "inner says 42"]


@pytest.mark.anyio
async def test_broken_transport_records_the_exception_class(instrumented: InMemorySpanExporter) -> None:
    plain_server = stdio_parameters(instrumented=False, service="crashing")
    with pytest.raises(Exception) as broken:  # noqa: PT011 - the SDK's McpError/MCPError, or a transport error
        async with connected("stdio", plain_server, read_timeout_seconds=read_timeout(10)) as session:
            await session.call_tool("crash", {})
    failure = broken.value
    while len(getattr(failure, "exceptions", ())) == 1:  # the one error inside task-group exception groups
        failure = failure.exceptions[0]  # type: ignore[attr-defined]
    [span] = [span for span in ours(instrumented) if span.name == "tools/call crash"]
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == type(failure).__qualname__
    assert attributes["network.transport"] == "pipe"
    assert "rpc.response.status_code" not in attributes
    assert span.status.status_code.name == "ERROR"


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["http", "sse"])
# the HTTP client the SDK's own client transports use: httpx on 1.x, httpx2 on 2.x
@pytest.mark.parametrize("http_library", ["httpx" if MCP1 else "httpx2"], indirect=True)
async def test_the_http_request_carrying_a_message_runs_under_its_client_span(
    instrumented: InMemorySpanExporter, http_library: str, transport: str
) -> None:
    if transport == "sse" and MCP1 and not hasattr(importlib.import_module("mcp.client.sse"), "request_within_origin"):
        pytest.skip("this 1.x SSE client posts from a closure of its own, with no step to run in the message's context")
    recorder, path = message_app(transport)
    with serving(recorder) as url:
        async with connected(transport, f"{url}{path}") as session:
            # the session was opened outside the agent's turn, as agents do: the turn's calls come later
            with trace.get_tracer("agent").start_as_current_span("agent turn"):
                await session.call_tool("add", {"a": 1, "b": 2})
    spans = instrumented.get_finished_spans()
    call = one(ours(instrumented), "tools/call add", SpanKind.CLIENT)
    posts = [span for span in spans if span.kind is SpanKind.CLIENT and span.name.startswith("POST")]
    # one POST (older httpx instrumentations make two spans of it)
    under_call = [post for post in posts if child_of(post, call)]
    assert {post.name for post in under_call} == {"POST"}
    assert child_of(one(ours(instrumented), "tools/call add", SpanKind.SERVER), call)
    # the header that went is the HTTP client span's own, beneath the message's CLIENT span
    [header] = [headers["traceparent"] for headers, message in recorder.posted() if message["method"] == "tools/call"]
    assert int(header.split("-")[2], 16) in {post.context.span_id for post in under_call}


def message_app(transport: str) -> tuple[RequestRecorder, str]:
    """The reference app behind a recorder of the HTTP requests it receives, and the path its client connects to."""
    if transport == "sse":
        return RequestRecorder(sse_app(reference_app())), "/sse"
    return RequestRecorder(streamable_http_app(reference_app(), stateless=False, json_response=True)), "/mcp"


def posts_sse_through_a_hook(transport: str) -> bool:
    """Whether this release's SSE client posts through `request_within_origin`, which takes the headers; older ones
    post from a closure of their own."""
    return transport != "sse" or hasattr(importlib.import_module("mcp.client.sse"), "request_within_origin")


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_the_post_of_a_message_carries_its_context_in_its_headers(
    instrumented: InMemorySpanExporter, transport: str
) -> None:
    """With no HTTP client instrumentation: for servers and gateways that read only HTTP headers, the POST that
    carries a message has the message's own `traceparent`; the session's other requests have none."""
    if not posts_sse_through_a_hook(transport):
        pytest.skip("this release's SSE client posts from a closure of its own, with no step to add headers to")
    recorder, path = message_app(transport)
    with serving(recorder) as url:
        async with connected(transport, f"{url}{path}") as session:
            with trace.get_tracer("agent").start_as_current_span("agent turn"):
                await session.call_tool("add", {"a": 1, "b": 2})
    posted = recorder.posted()
    assert {"initialize", "notifications/initialized", "tools/call"} <= {message["method"] for _, message in posted}
    for headers, message in posted:
        assert headers.get("traceparent") == message["params"]["_meta"]["traceparent"], message["method"]
    call = one(ours(instrumented), "tools/call add", SpanKind.CLIENT)
    [header] = [headers["traceparent"] for headers, message in posted if message["method"] == "tools/call"]
    assert header.split("-")[1:3] == [format(call.context.trace_id, "032x"), format(call.context.span_id, "016x")]
    assert recorder.others()
    assert [headers.get("traceparent") for _, headers in recorder.others()] == [None] * len(recorder.others())


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["argument", "environment"])
async def test_the_post_of_a_message_keeps_its_headers_as_they_were_when_told(
    instrument: Any, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "argument":
        instrument(inject_http_headers=False)
    else:
        monkeypatch.setenv("OTEL_PYTHON_MCP_INJECT_HTTP_HEADERS", " False ")
        instrument()
    recorder, path = message_app("http")
    with serving(recorder) as url:
        async with connected("http", f"{url}{path}") as session:
            await session.call_tool("add", {"a": 1, "b": 2})
    posted = recorder.posted()
    assert "tools/call" in [message["method"] for _, message in posted]
    assert all("traceparent" in message["params"]["_meta"] for _, message in posted)
    assert [headers.get("traceparent") for headers, _ in posted] == [None] * len(posted)


def test_a_servers_end_does_not_wait_for_an_exporter_that_does_not_return() -> None:
    """The session manager's end flushes the providers, but an exporter stuck on an unreachable backend does not hold
    the server's exit: the SDK's own shutdown waits for it anyway, where there is one (see docs/overhead.md)."""
    exporting, release = threading.Event(), threading.Event()

    class Stuck(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            exporting.set()
            release.wait(60)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Stuck()))  # its schedule: nothing exported for 5 s
    instrumentor = McpInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with serving(streamable_http_app(reference_app(), stateless=False, json_response=True)) as url:
            peer = StreamableHttpPeer(url)
            peer.initialize()
            peer.close()
        # the server shut down (`serving` checks it), while the flush it started still exports
        assert exporting.is_set()
        assert not release.is_set()
    finally:
        release.set()
        instrumentor.uninstrument()
        provider.shutdown()


@pytest.mark.anyio
async def test_sigterm_to_uvicorn_loses_nothing(receiver: OtlpReceiver) -> None:
    """The SDK's default schedule (spans batched for 5 s, metrics every 60 s), and uvicorn re-raising SIGTERM after
    its shutdown: the session manager's end flushes both providers before the process dies."""
    receiver.clear()
    env = {**otlp_env(receiver.endpoint), "OTEL_METRICS_EXPORTER": "otlp"}
    del env["OTEL_BSP_SCHEDULE_DELAY"]
    server = HttpServer(env, instrumented=True, service="stopped-server")
    try:
        async with connected("http", server.url) as session:
            await session.call_tool("add", {"a": 1, "b": 2})
    finally:
        server.stop()
    assert server.process.returncode != 0  # killed by the signal uvicorn re-raised: no exit handler ran
    assert [span.name for span in receiver.spans if span.kind is SpanKind.SERVER and span.name == "tools/call add"]
    assert [metric for metric in receiver.metrics if metric.name == "mcp.server.operation.duration"]
