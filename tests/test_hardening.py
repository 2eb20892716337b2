"""Never break the host: faults in the OpenTelemetry pipeline, peers that leave or cancel, instrumenting while
sessions run, generated params and ids, and sessions that leave nothing behind on any transport."""

from __future__ import annotations

import gc
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from opentelemetry_instrumentation_mcp import McpInstrumentor, _guard
from tests.apps import reference_app
from tests.conftest import _PROVIDER, one, ours
from tests.http_peers import serving
from tests.mcp_compat import MCP1, connected, jsonrpc, raw_peer, sse_app, stdio_parameters, streamable_http_app

pytestmark = pytest.mark.anyio
ADD = {"name": "add", "arguments": {"a": 1, "b": 2}}


async def conversation() -> list[dict[str, Any]]:
    async with raw_peer(reference_app()) as peer:
        return [
            await peer.request("tools/call", ADD),
            await peer.request("tools/call", {"name": "explode", "arguments": {}}),
            await peer.request("ping"),
            await peer.request("prompts/get", {"name": "greet", "arguments": {"name": "Ada"}}),
        ]


class Failing(SpanExporter, SpanProcessor):
    """An exporter and a span processor that fail at everything."""

    def export(self, spans: Any) -> SpanExportResult:
        raise RuntimeError("exporter down")

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        raise RuntimeError("processor broken on start")

    def on_end(self, span: Any) -> None:
        raise RuntimeError("processor broken on end")


class FailingMetrics(MetricExporter):
    def __init__(self) -> None:
        super().__init__()

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        raise RuntimeError("metric exporter down")

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return False

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


@pytest.fixture
def tolerant(monkeypatch: pytest.MonkeyPatch) -> None:
    """Faults of the environment, not ours: contained and logged, as in production."""
    monkeypatch.setattr(_guard, "RAISE_INTERNAL_ERRORS", False)


@pytest.mark.parametrize("fault", ["exporter", "processor", "metric reader"])
async def test_faults_in_the_pipeline_change_no_answer(tolerant: None, fault: str) -> None:
    expected = await conversation()
    tracer_provider = TracerProvider()
    failing = Failing()
    meter_provider = MeterProvider()
    if fault == "exporter":
        tracer_provider.add_span_processor(SimpleSpanProcessor(failing))
    elif fault == "processor":
        tracer_provider.add_span_processor(failing)
    else:
        reader = PeriodicExportingMetricReader(FailingMetrics(), export_interval_millis=10)
        meter_provider = MeterProvider(metric_readers=[reader])
    instrumentor = McpInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        assert await conversation() == expected
        await anyio.sleep(0.05)  # the failing metric reader has exported (and failed) by now
        assert await conversation() == expected
    finally:
        instrumentor.uninstrument()
        meter_provider.shutdown()  # its reader's thread would go on failing into later tests' logs


async def test_a_cancelled_request(instrumented: InMemorySpanExporter) -> None:
    async def cancel_a_sleep() -> Any:
        """What the client sees after cancelling (mcp 1.9 ends the session: the same, traced or not)."""
        try:
            async with raw_peer(reference_app()) as peer:
                sleep = {"name": "sleep", "arguments": {"seconds": 5}}
                await peer.send(jsonrpc("tools/call", sleep, 99))
                await anyio.sleep(0.2)
                await peer.notify("notifications/cancelled", {"requestId": 99, "reason": "changed my mind"})
                return [await peer.request("ping")]
        except BaseException as failure:  # noqa: BLE001 - compared, not handled
            return type(failure).__name__

    with suppress_instrumentation():
        plain = await cancel_a_sleep()
    assert await cancel_a_sleep() == plain
    [span] = [span for span in ours(instrumented) if span.name == "tools/call sleep"]
    assert span.end_time is not None
    assert_cancelled(span)


def assert_cancelled(span: ReadableSpan) -> None:
    """Cancelled, and said so: not an error, and nothing of the exception (a task's repr) on the span."""
    assert span.status.status_code is StatusCode.UNSET
    assert "error.type" not in (span.attributes or {})
    assert [event.name for event in span.events] == ["cancelled"]


async def test_a_call_its_caller_cancels(instrumented: InMemorySpanExporter) -> None:
    async with connected("memory", reference_app()) as session:
        with anyio.move_on_after(0.3):
            await session.call_tool("sleep", {"seconds": 1})
        await session.send_ping()  # the session goes on
    assert_cancelled(one(ours(instrumented), "tools/call sleep", SpanKind.CLIENT))


async def test_instrumenting_while_sessions_run(exporter: InMemorySpanExporter) -> None:
    """Sessions keep answering through instrument/uninstrument cycles. A session that started before
    `instrument()` stays untraced on mcp 2.x (the SDK bound its handlers when it started); none is traced once
    uninstrumented, whatever the SDK still holds."""
    instrumentor = McpInstrumentor()
    async with raw_peer(reference_app()) as early:
        for cycle in range(4):
            instrumenting = cycle % 2 == 0
            if instrumenting:
                instrumentor.instrument(tracer_provider=_PROVIDER)
            else:
                instrumentor.uninstrument()
            exporter.clear()
            async with raw_peer(reference_app()) as late:
                for peer in (early, late):
                    answers = await peer.pipelined([("tools/call", ADD)] * 5)
                    assert [answer["result"]["isError"] for answer in answers] == [False] * 5
            calls = [span.name for span in ours(exporter)].count("tools/call add")
            if not instrumenting:
                assert calls == 0
            else:
                assert calls == (10 if MCP1 else 5)


ids = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1000, max_size=5000),
)
params = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


async def ask(request_id: Any, method: str, arguments: Any) -> Any:
    """The answers, or how the SDK failed (some releases end a session on odd ids, or leave a request unanswered:
    an answer takes milliseconds in memory, so two seconds of silence is one): the same, traced or not."""
    try:
        with anyio.fail_after(2):
            return await conversation_of(request_id, method, arguments)
    except BaseException as failure:  # noqa: BLE001 - compared, not handled
        return type(failure).__name__


async def conversation_of(request_id: Any, method: str, arguments: Any) -> Any:
    async with raw_peer(reference_app()) as peer:
        params = {"name": "add", "arguments": arguments, "_meta": arguments}
        return await peer.request(method, params, id=request_id), await peer.request("ping")


@pytest.fixture(scope="module")
def instrumented_for_fuzzing() -> Iterator[None]:
    McpInstrumentor().instrument(tracer_provider=_PROVIDER)
    yield
    McpInstrumentor().uninstrument()


@settings(max_examples=settings.default.max_examples // 2)  # each example is two whole sessions
@given(
    request_id=ids,
    method=st.sampled_from(["tools/call", "prompts/get", "resources/read", "ping", "no/such"]),
    arguments=params,
)
def test_generated_ids_and_params_get_the_uninstrumented_answers(
    instrumented_for_fuzzing: None, request_id: Any, method: str, arguments: Any
) -> None:
    with suppress_instrumentation():
        plain = anyio.run(ask, request_id, method, arguments)
    assert anyio.run(ask, request_id, method, arguments) == plain


def leaked(sessions: Callable[[int], None], count: int, *, traced_memory: bool) -> tuple[list[str], dict[str, int]]:
    """What `count` more sessions leave behind once the first few have warmed caches up: every type (ours, the
    mcp SDK's, the OpenTelemetry SDK's) whose live instances grew by half a session's worth or more, and, with
    `traced_memory` (it slows every allocation down), every line of this package whose allocations still held
    grew as much, in blocks or in bytes (16 a session). One-off allocations (Python 3.10 keeps a spare frame per
    function, for one) are neither."""
    sessions(min(5, count // 3))
    before = census()
    if traced_memory:
        tracemalloc.start()
    start = tracemalloc.take_snapshot() if traced_memory else None
    sessions(count)
    held: list[str] = []
    if start is not None:
        ours_only = [tracemalloc.Filter(True, "*opentelemetry_instrumentation_mcp*")]
        end = tracemalloc.take_snapshot().filter_traces(ours_only)
        tracemalloc.stop()
        held = [
            f"{stat.traceback}: {stat.size_diff} bytes in {stat.count_diff} blocks"
            for stat in end.compare_to(start.filter_traces(ours_only), "lineno")
            if stat.count_diff >= count // 2 or stat.size_diff >= 16 * count
        ]
    grown = census() - before
    return held, {name: number for name, number in grown.items() if number >= count // 2}


WATCHED = ("opentelemetry_instrumentation_mcp", "mcp", "opentelemetry")


def census() -> Counter[str]:
    """Live objects by type, for the types of this package, the mcp SDK and the OpenTelemetry SDK."""
    gc.collect()
    names = (f"{getattr(kind, '__module__', '')}.{kind.__qualname__}" for kind in map(type, gc.get_objects()))
    return Counter(name for name in names if name.startswith(WATCHED))


async def sdk_sessions(transport: str, target: Any, count: int) -> None:
    for _ in range(count):
        async with connected(transport, target) as session:
            await session.call_tool("add", {"a": 1, "b": 2})


@contextmanager
def transport_under_test(transport: str) -> Iterator[tuple[Callable[[int], None], int]]:
    """How to open and close N sessions of the SDK's client with a transport, both sides in this process but for
    stdio's server, and how many sessions the test opens (stdio spawns a process for each)."""
    if transport == "memory":
        yield (lambda count: anyio.run(sdk_sessions, "memory", reference_app(), count)), 200
    elif transport == "stdio":
        yield (lambda count: anyio.run(sdk_sessions, "stdio", stdio_parameters(instrumented=False), count)), 4
    elif transport == "sse":
        with serving(sse_app(reference_app())) as url:
            yield (lambda count: anyio.run(sdk_sessions, "sse", f"{url}/sse", count)), 40
    else:
        with serving(streamable_http_app(reference_app(), stateless=False, json_response=True)) as url:
            yield (lambda count: anyio.run(sdk_sessions, "http", f"{url}/mcp", count)), 40


@pytest.mark.parametrize("transport", ["memory", "streamable-http", "sse", "stdio"])
def test_sessions_leave_nothing_behind(instrumented: InMemorySpanExporter, transport: str) -> None:
    with transport_under_test(transport) as (open_and_close, count):

        def sessions(number: int) -> None:
            open_and_close(number)
            instrumented.clear()
            gc.collect()

        held, grown = leaked(sessions, count, traced_memory=transport == "memory")
        if transport == "streamable-http":
            # mcp before 2.3 keeps the transport of every session a client ended (its own leak, traced or not):
            # only what grows beyond what it keeps untraced is ours
            McpInstrumentor().uninstrument()
            try:
                _, kept_untraced = leaked(sessions, count, traced_memory=False)
            finally:
                McpInstrumentor().instrument(tracer_provider=_PROVIDER)
            grown = {name: n for name, n in grown.items() if n - kept_untraced.get(name, 0) >= count // 2}
    assert grown == {}
    assert held == []


STEPS_OF_OURS = [
    "_operation.carrier_of",  # the context a message carries
    "_operation.client_parent",
    "_operation.server_parent",
    "_operation.span_name_and_attributes",
    "_transport._url_attributes",  # inside the SDK's HTTP client transport's constructor
    "_transport._note_request",  # inside the SDK's server transport's request entry
    "_transport.extract",
    *(
        ["_mcp1._message_context", "_mcp1._root"]
        if MCP1
        else ["_mcp2._share_connection_state", "_mcp2.Adapter._read_sent", "_mcp2._inject"]
    ),
]


async def http_conversation(url: str) -> list[str]:
    async with connected("http", url) as session:
        added = await session.call_tool("add", {"a": 1, "b": 2})
        tools = await session.list_tools()
    return [added.content[0].text, *sorted(tool.name for tool in tools.tools)]


@pytest.mark.parametrize("step", STEPS_OF_OURS)
async def test_a_fault_in_any_step_of_ours_changes_no_answer(
    tolerant: None, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """Every step of ours that runs inside the host's calls is behind the guard."""
    module, name = step.rsplit(".", 1)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{step} is broken")

    with serving(streamable_http_app(reference_app(), stateless=False, json_response=True)) as url:
        expected = await http_conversation(f"{url}/mcp")
        monkeypatch.setattr(f"opentelemetry_instrumentation_mcp.{module}.{name}", broken)
        instrumentor = McpInstrumentor()
        instrumentor.instrument(tracer_provider=_PROVIDER)
        try:
            assert await http_conversation(f"{url}/mcp") == expected
        finally:
            instrumentor.uninstrument()
