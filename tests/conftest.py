"""Fixtures: the real OpenTelemetry SDK with in-memory exporters, and the instrumentation around each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry_instrumentation_mcp import McpInstrumentor, _guard

_guard.RAISE_INTERNAL_ERRORS = True


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
def instrumented(exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """The instrumentation on, with the test's tracer provider passed explicitly."""
    instrumentor = McpInstrumentor()
    instrumentor.instrument(tracer_provider=_PROVIDER)
    yield exporter
    instrumentor.uninstrument()


def ours(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """The finished spans this package emitted, in end order."""
    return [
        span
        for span in exporter.get_finished_spans()
        if span.instrumentation_scope is not None
        and span.instrumentation_scope.name == "opentelemetry_instrumentation_mcp"
    ]
