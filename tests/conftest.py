"""Fixtures: the real OpenTelemetry SDK with in-memory exporters, the instrumentation around each test, a real OTLP
receiver. The SDK's tracer provider is the global one, set once for the whole run (the mcp 2.x SDK holds a tracer
from the global provider it first saw): `trace.get_tracer(...)` in a test records into `exporter`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry_instrumentation_mcp import McpInstrumentor, _guard
from opentelemetry_instrumentation_mcp.viewer import OtlpReceiver

_guard.RAISE_INTERNAL_ERRORS = True  # a fault of ours fails the test instead of being logged

# Property tests: "ci" by default; `--hypothesis-profile=thorough` (or HYPOTHESIS_PROFILE=thorough) for ten times more.
_PROPERTIES = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}
settings.register_profile("ci", max_examples=200, **_PROPERTIES)
settings.register_profile("thorough", max_examples=2000, **_PROPERTIES)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))
trace.set_tracer_provider(_PROVIDER)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def tracer_provider() -> TracerProvider:
    """The global SDK tracer provider, whose spans go to `exporter`."""
    return _PROVIDER


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


@pytest.fixture
def instrument(exporter: InMemorySpanExporter) -> Iterator[Callable[..., InMemorySpanExporter]]:
    """`instrument(**options)`: the instrumentation on with those options (and the test's tracer provider), until
    the test ends."""
    instrumentor = McpInstrumentor()

    def instrument(**kwargs: Any) -> InMemorySpanExporter:
        instrumentor.instrument(tracer_provider=_PROVIDER, **kwargs)
        return exporter

    yield instrument
    instrumentor.uninstrument()


@pytest.fixture(scope="module")
def instrumented_module() -> Iterator[InMemorySpanExporter]:
    """The instrumentation on for a whole module (property tests run many examples a test)."""
    McpInstrumentor().instrument(tracer_provider=_PROVIDER)
    yield _EXPORTER
    McpInstrumentor().uninstrument()


@pytest.fixture
def metrics() -> Iterator[InMemoryMetricReader]:
    """The instrumentation on, with a meter provider read in memory (and the test's tracer provider)."""
    reader = InMemoryMetricReader()
    instrumentor = McpInstrumentor()
    instrumentor.instrument(tracer_provider=_PROVIDER, meter_provider=MeterProvider(metric_readers=[reader]))
    yield reader
    instrumentor.uninstrument()


@pytest.fixture
def tolerant(monkeypatch: pytest.MonkeyPatch) -> None:
    """Faults are contained and logged once, as in production, instead of failing the test."""
    monkeypatch.setattr(_guard, "RAISE_INTERNAL_ERRORS", False)
    monkeypatch.setattr(_guard, "_reported", set())


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    """A real OTLP receiver (HTTP) on 127.0.0.1, for what processes of their own export."""
    with OtlpReceiver() as receiver:
        yield receiver
