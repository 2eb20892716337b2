"""Fixtures: the real OpenTelemetry SDK with in-memory exporters, and the instrumentation around each test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from opentelemetry_instrumentation_mcp import McpInstrumentor, _guard
from opentelemetry_instrumentation_mcp.viewer import OtlpReceiver

_guard.RAISE_INTERNAL_ERRORS = True

# Property tests: "ci" by default; `--hypothesis-profile=thorough` (or HYPOTHESIS_PROFILE=thorough) for ten times more.
_PROPERTIES = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}
settings.register_profile("ci", max_examples=200, **_PROPERTIES)
settings.register_profile("thorough", max_examples=2000, **_PROPERTIES)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))
# Set once for the whole run: the mcp 2.x SDK holds a tracer from the global provider it first saw.
trace.set_tracer_provider(_PROVIDER)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """The in-memory exporter behind the global SDK tracer provider, empty at the start of the test."""
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.fixture
def metrics() -> Iterator[InMemoryMetricReader]:
    """The instrumentation on, with a meter provider read in memory (and the test's tracer provider)."""
    reader = InMemoryMetricReader()
    instrumentor = McpInstrumentor()
    instrumentor.instrument(tracer_provider=_PROVIDER, meter_provider=MeterProvider(metric_readers=[reader]))
    yield reader
    instrumentor.uninstrument()


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    """The data points of one metric, from everything recorded so far."""
    data = reader.get_metrics_data()
    if data is None:
        return []
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


@pytest.fixture
def instrumented(exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """The instrumentation on, with the test's tracer provider passed explicitly."""
    instrumentor = McpInstrumentor()
    instrumentor.instrument(tracer_provider=_PROVIDER)
    yield exporter
    instrumentor.uninstrument()


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    """A real OTLP receiver (HTTP) on 127.0.0.1, for what processes of their own export."""
    with OtlpReceiver() as receiver:
        yield receiver


def ours(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """The finished spans this package emitted, in end order."""
    return [
        span
        for span in exporter.get_finished_spans()
        if span.instrumentation_scope is not None
        and span.instrumentation_scope.name == "opentelemetry_instrumentation_mcp"
    ]


def one(spans: Any, name: str, kind: SpanKind) -> ReadableSpan:
    """The one span of that name and kind."""
    [span] = [span for span in spans if span.name == name and span.kind is kind]
    return span


def child_of(child: ReadableSpan, parent: ReadableSpan) -> bool:
    """Whether `child`'s parent is `parent`."""
    return child.parent is not None and (child.parent.trace_id, child.parent.span_id) == (
        parent.context.trace_id,
        parent.context.span_id,
    )
