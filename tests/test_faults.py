"""Never break the host: faults in the OpenTelemetry pipeline and in any step of ours change no answer, and
sessions keep answering through instrument/uninstrument cycles."""

from __future__ import annotations

import contextvars
import re
from typing import Any

import anyio
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from opentelemetry_instrumentation_mcp import McpInstrumentor
from support.apps import ADD, reference_app
from support.compat import MCP1, streamable_http_app
from support.peers import raw_peer, serving
from support.sessions import connected
from support.spans import ours

pytestmark = pytest.mark.anyio


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


async def test_instrumenting_while_sessions_run(
    exporter: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    """Sessions keep answering through instrument/uninstrument cycles. A session that started before
    `instrument()` stays untraced on mcp 2.x (the SDK bound its handlers when it started); none is traced once
    uninstrumented, whatever the SDK still holds."""
    instrumentor = McpInstrumentor()
    async with raw_peer(reference_app()) as early:
        for cycle in range(4):
            instrumenting = cycle % 2 == 0
            if instrumenting:
                instrumentor.instrument(tracer_provider=tracer_provider)
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


STEPS_OF_OURS = [
    "_operation.carrier_for",  # the context a message carries
    "_operation.choose_client_parent",
    "_operation.choose_server_parent",
    "_operation.describe_span",
    "_transport._url_attributes",  # inside the SDK's HTTP client transport's constructor
    "_transport._note_request",  # inside the SDK's server transport's request entry
    "_transport.extract",
    "_transport._posted_message_context",  # the client transport's POST of a message
    "_transport.carrier_for",  # the POST's headers
    *(
        ["_mcp1._receive_loop_metadata", "_mcp1._root", "_mcp1._next_request_id"]
        if MCP1
        else [
            "_mcp2._share_connection_state",
            "_mcp2.Adapter._read_sent",
            "_mcp2._inject",
            "_mcp2.inject_into_meta",
            "_mcp2._id_to_mint",
        ]
    ),
]


async def http_conversation(url: str) -> list[str]:
    async with connected("http", url) as session:
        added = await session.call_tool("add", {"a": 1, "b": 2})
        tools = await session.list_tools()
    return [added.content[0].text, *sorted(tool.name for tool in tools.tools)]


@pytest.mark.parametrize("step", STEPS_OF_OURS)
async def test_a_fault_in_any_step_of_ours_changes_no_answer(
    tolerant: None, monkeypatch: pytest.MonkeyPatch, tracer_provider: TracerProvider, step: str
) -> None:
    """Every step of ours that runs inside the host's calls is behind the guard."""
    module, name = step.rsplit(".", 1)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{step} is broken")

    with serving(streamable_http_app(reference_app(), stateless=False, json_response=True)) as url:
        expected = await http_conversation(f"{url}/mcp")
        monkeypatch.setattr(f"opentelemetry_instrumentation_mcp.{module}.{name}", broken)
        instrumentor = McpInstrumentor()
        instrumentor.instrument(tracer_provider=tracer_provider)
        try:
            assert await http_conversation(f"{url}/mcp") == expected
        finally:
            instrumentor.uninstrument()


def closed_in_another_context(call: Any) -> str:
    """Close an abandoned call from another context, as the garbage collector closes a coroutine; what it raised
    (the mcp 2.x SDK's own context variables cannot be reset there), the address in a token's repr left out."""
    try:
        contextvars.Context().run(call.close)
    except Exception as error:  # noqa: BLE001 - compared, not handled
        return f"{type(error).__name__}: {re.sub(' at 0x[0-9a-f]+', '', str(error))}"
    return "nothing"


async def test_a_call_closed_in_another_context_raises_what_the_sdk_raises(
    instrumented: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    """A call abandoned while it waits for its answer, then closed from another context: it raises what it raises
    untraced, its span ends, and the session goes on. The context our span's was attached in cannot be reset there,
    and OpenTelemetry's API logs so, as it does for any instrumentation."""
    async with connected("memory", reference_app()) as session:
        with suppress_instrumentation():
            untraced = session.send_ping()
            untraced.send(None)  # runs until the call waits for its answer
        expected = closed_in_another_context(untraced)
        call = session.send_ping()
        call.send(None)
        assert closed_in_another_context(call) == expected
        await session.send_ping()
    assert [span.kind for span in ours(instrumented) if span.name == "ping"].count(SpanKind.CLIENT) == 2
    assert "Failed to detach context" in caplog.text
