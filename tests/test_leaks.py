"""Sessions leave nothing behind, on any transport: no instance of a type of ours, the mcp SDK's or OpenTelemetry's,
and, in memory, no allocation of ours that grows with them."""

from __future__ import annotations

import gc
import logging
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry_instrumentation_mcp import McpInstrumentor
from support.apps import reference_app
from support.compat import sse_app, streamable_http_app
from support.peers import serving
from support.sessions import connected, stdio_parameters


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
def test_sessions_leave_nothing_behind(
    instrumented: InMemorySpanExporter,
    tracer_provider: TracerProvider,
    transport: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the SDK logs the end of some sessions' streams as errors, whose tracebacks pytest keeps with the test's log
    # records, and with them every object of the session they reach: not logged, nothing is kept
    caplog.set_level(logging.CRITICAL, logger="mcp")
    with transport_under_test(transport) as (open_and_close, count):

        def sessions(number: int) -> None:
            open_and_close(number)
            instrumented.clear()
            gc.collect()

        held, grown = leaked(sessions, count, traced_memory=transport == "memory")
        if transport == "streamable-http":
            # mcp 1.9 and 2.0 keep the transport of every session a client ended (their own leak, traced or not):
            # only what grows beyond what they keep untraced is ours
            McpInstrumentor().uninstrument()
            try:
                _, kept_untraced = leaked(sessions, count, traced_memory=False)
            finally:
                McpInstrumentor().instrument(tracer_provider=tracer_provider)
            grown = {name: n for name, n in grown.items() if n - kept_untraced.get(name, 0) >= count // 2}
    assert grown == {}
    assert held == []
