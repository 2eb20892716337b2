"""Configuration (arguments and environment variables), opt-in content capture, hooks."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from opentelemetry import propagate
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from opentelemetry_instrumentation_mcp import McpInstrumentor, _guard
from opentelemetry_instrumentation_mcp._content import TRUNCATED, as_json
from support import hooks
from support.apps import reference_app
from support.compat import MCP_VERSION
from support.sessions import connected
from support.spans import ours, points

pytestmark = pytest.mark.anyio
SECRET = "s3cr3t-argument-value"


async def converse() -> None:
    async with connected("memory", reference_app()) as session:
        await session.call_tool("remember", {"note": SECRET})
        await session.get_prompt("greet", {"name": SECRET})
        await session.send_ping()


def both(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    found = [span for span in spans if span.name == name]
    assert sorted(span.kind.name for span in found) == ["CLIENT", "SERVER"]
    return found


async def test_content_is_never_recorded_by_default(instrument: Any) -> None:
    exporter = instrument()
    await converse()
    spans = exporter.get_finished_spans()
    assert spans
    for span in spans:
        for key, value in (span.attributes or {}).items():
            assert SECRET not in str(value), key
            assert not key.startswith(("gen_ai.tool.call.", "gen_ai.prompt.variable.")), key
        assert all(SECRET not in str(event.attributes) for event in span.events)


@pytest.mark.parametrize("how", ["argument", "environment", "SPAN_ONLY", "span_and_event", "mode argument"])
async def test_content_capture_when_enabled(instrument: Any, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    if how == "argument":
        exporter = instrument(capture_content=True)
    elif how == "mode argument":
        exporter = instrument(capture_content="SPAN_ONLY")
    else:
        monkeypatch.setenv(
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true" if how == "environment" else how
        )
        exporter = instrument()
    await converse()
    spans = ours(exporter)
    for span in both(spans, "tools/call remember"):
        attributes = dict(span.attributes or {})
        assert json.loads(str(attributes["gen_ai.tool.call.arguments"])) == {"note": SECRET}
        result = json.loads(str(attributes["gen_ai.tool.call.result"]))
        assert result["content"][0]["text"] == "noted"
    for span in both(spans, "prompts/get greet"):
        assert dict(span.attributes or {})["gen_ai.prompt.variable.name"] == SECRET
    assert all("gen_ai.tool.call.arguments" not in (span.attributes or {}) for span in both(spans, "ping"))


@pytest.mark.parametrize("value", ["false", "NO_CONTENT", "EVENT_ONLY", " event_only "])
async def test_content_modes_that_put_nothing_on_spans(
    instrument: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
    with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_mcp"):
        exporter = instrument()
    assert not caplog.records  # a mode util-genai knows is no mistake
    await converse()
    for span in ours(exporter):
        assert not [key for key in span.attributes or {} if key.startswith(("gen_ai.tool.call.", "gen_ai.prompt.var"))]


async def test_an_unknown_capture_mode_warns_and_records_nothing(
    instrument: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "EVERYTHING")
    with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_mcp"):
        exporter = instrument()
    [warning] = caplog.records
    assert "EVERYTHING" in warning.getMessage()
    assert "SPAN_ONLY" in warning.getMessage()
    await converse()
    for span in ours(exporter):
        assert "gen_ai.tool.call.arguments" not in (span.attributes or {})


async def test_captured_content_is_capped(instrument: Any) -> None:
    exporter = instrument(capture_content=True, content_max_length=20)
    await converse()
    for span in both(ours(exporter), "tools/call remember"):
        for key in ("gen_ai.tool.call.arguments", "gen_ai.tool.call.result"):
            value = str(dict(span.attributes or {})[key])
            assert len(value) == 20
            assert value.endswith(TRUNCATED)
    for span in both(ours(exporter), "prompts/get greet"):
        assert dict(span.attributes or {})["gen_ai.prompt.variable.name"] == SECRET[: 20 - len(TRUNCATED)] + TRUNCATED


def test_content_that_does_not_serialise() -> None:
    class Odd:
        def __repr__(self) -> str:
            return "<odd>"

    looping: list[Any] = []
    looping.append(looping)
    assert as_json({"value": Odd()}, 100) == '{"value": "<odd>"}'
    assert as_json(looping, 100) == "[[...]]"
    assert as_json("é" * 50, 16) == '"ééé' + TRUNCATED
    assert as_json("é" * 50, 5) == '"éééé'  # no room for the mark


async def test_excluded_methods_have_no_spans_nor_metrics(instrument: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_PYTHON_MCP_EXCLUDED_METHODS", " ping, prompts/get ,")
    reader = InMemoryMetricReader()
    exporter = instrument(meter_provider=MeterProvider(metric_readers=[reader]))
    await converse()
    names = {span.name for span in ours(exporter)}
    assert "tools/call remember" in names
    assert not names & {"ping", "prompts/get greet"}
    for metric in ("mcp.server.operation.duration", "mcp.client.operation.duration"):
        methods = {point.attributes["mcp.method.name"] for point in points(reader, metric)}
        assert "tools/call" in methods
        assert not methods & {"ping", "prompts/get"}


async def test_hooks_by_argument(instrument: Any) -> None:
    seen: list[tuple[str, SpanKind, str, Any]] = []
    exporter = instrument(
        request_hook=lambda span, method, params: seen.append(("request", span.kind, method, params)),
        response_hook=lambda span, method, result: seen.append(("response", span.kind, method, result)),
    )
    await converse()
    calls = [entry for entry in seen if entry[2] == "tools/call"]
    assert [(what, kind) for what, kind, _, _ in calls] == [
        ("request", SpanKind.CLIENT),
        ("request", SpanKind.SERVER),
        ("response", SpanKind.SERVER),
        ("response", SpanKind.CLIENT),
    ]
    assert calls[0][3]["arguments"] == {"note": SECRET}
    assert calls[2][3]["content"][0]["text"] == "noted"
    assert ours(exporter)


async def test_hooks_by_environment_and_a_raising_hook(
    instrument: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_MCP_REQUEST_HOOK", "support.hooks:on_request")
    monkeypatch.setenv("OTEL_PYTHON_MCP_RESPONSE_HOOK", "support.hooks:on_response")
    hooks.calls.clear()
    exporter = instrument()
    await converse()
    assert ("request", "ping", {}) in [(what, method, params or {}) for what, method, params in hooks.calls]
    assert {dict(span.attributes or {}).get("test.hooked") for span in ours(exporter)} >= {"tools/call", "ping"}

    def raising(*args: Any) -> None:
        raise RuntimeError("a broken hook")

    McpInstrumentor().uninstrument()
    monkeypatch.setattr(_guard, "RAISE_INTERNAL_ERRORS", False)
    monkeypatch.setattr(_guard, "_reported", set())
    instrument(request_hook=raising, response_hook=raising)
    with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_mcp"):
        await converse()  # answers as ever
    assert sorted(
        record.getMessage() for record in caplog.records if record.name == "opentelemetry_instrumentation_mcp"
    ) == [
        "mcp instrumentation failed in the request hook; the MCP call goes on unaffected",
        "mcp instrumentation failed in the response hook; the MCP call goes on unaffected",
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_PYTHON_MCP_CONTENT_MAX_LENGTH", "lots"),
        ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "perhaps"),
        ("OTEL_PYTHON_MCP_REQUEST_HOOK", "no.such.module:hook"),
        ("OTEL_PYTHON_MCP_INCOMING_CONTEXT", "whatever"),
        ("OTEL_PYTHON_MCP_INJECT_HTTP_HEADERS", "sometimes"),
        ("OTEL_PYTHON_MCP_ENRICH_TOOL_SPANS", "maybe"),
    ],
)
async def test_a_bad_value_warns_once_and_falls_back(
    instrument: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_mcp"):
        exporter = instrument()
    [record] = caplog.records
    assert record.getMessage().startswith(f"{variable}={value!r} is not usable")
    assert record.getMessage().endswith("; using the default")
    await converse()
    assert all("gen_ai.tool.call.arguments" not in (span.attributes or {}) for span in ours(exporter))


async def test_sampled_out_spans_do_no_content_work(
    exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With content capture on, a span the sampler dropped costs no JSON and calls no hook."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    from opentelemetry_instrumentation_mcp import _content

    serialised: list[Any] = []
    monkeypatch.setattr(_content, "as_json", lambda value, limit: serialised.append(value) or "")
    hooked: list[Any] = []
    instrumentor = McpInstrumentor()
    instrumentor.instrument(
        tracer_provider=TracerProvider(sampler=ALWAYS_OFF),
        capture_content=True,
        request_hook=lambda *args: hooked.append(args),
        response_hook=lambda *args: hooked.append(args),
    )
    try:
        await converse()
    finally:
        instrumentor.uninstrument()
    assert serialised == []
    assert hooked == []


async def test_with_no_propagator_a_message_goes_without_meta(instrument: Any) -> None:
    """Nothing to send (`OTEL_PROPAGATORS=none`): the params go as the caller wrote them, no empty `_meta`."""
    seen: list[tuple[SpanKind, str, Any]] = []
    instrument(request_hook=lambda span, method, params: seen.append((span.kind, method, params)))
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([]))
    try:
        await converse()
    finally:
        propagate.set_global_textmap(previous)
    received = [params for kind, method, params in seen if kind is SpanKind.SERVER and method == "tools/call"]
    sent = {"name": "remember", "arguments": {"note": SECRET}}
    if (2, 0) <= MCP_VERSION < (2, 3):  # these dispatchers put `_meta` on the wire even when it is empty
        sent["_meta"] = {}
    assert received == [sent]
