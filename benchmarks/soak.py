"""Soaks and load, too long for the test suite: retained memory over many sessions, and trace isolation under load.

    python benchmarks/soak.py [--sessions 10000] [--load 200x50]

- memory: `--sessions` sessions opened and closed (a `ping` each), in memory and over stateful streamable HTTP,
  after a warm-up; reported, the bytes this package's code allocated and still holds (tracemalloc, filtered to
  its files). The suite's `test_sessions_leave_nothing_behind` checks a few hundred on every transport.
- load: `--load` SESSIONSxCALLS concurrent streamable HTTP sessions (32 client threads), each with its own
  `initialize` traceparent; every `tools/call` span must lie in its own session's trace. Reported, the wall
  time and the calls per second. The suite runs the same check at 20x10.

Exits non-zero when more than 64 KiB is held or a span strays into another session's trace.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import anyio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from opentelemetry_instrumentation_mcp import McpInstrumentor
from support.apps import reference_app
from support.compat import streamable_http_app
from support.peers import StreamableHttpPeer, concurrent_sessions, raw_peer, serving, strays

EXPORTER = InMemorySpanExporter()


def retained(sessions: Callable[[int], None], count: int) -> int:
    """Bytes allocated by this package's code and still held after `count` sessions (once warmed up)."""
    sessions(200)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    sessions(count)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    ours = [tracemalloc.Filter(True, "*opentelemetry_instrumentation_mcp*")]
    return sum(stat.size_diff for stat in after.filter_traces(ours).compare_to(before.filter_traces(ours), "filename"))


def in_memory(count: int) -> None:
    async def sessions() -> None:
        for _ in range(count):
            async with raw_peer(reference_app()) as peer:
                await peer.request("ping")

    anyio.run(sessions)
    EXPORTER.clear()
    gc.collect()


def over_http(url: str) -> Callable[[int], None]:
    def sessions(count: int) -> None:
        for _ in range(count):
            peer = StreamableHttpPeer(url)
            peer.initialize()
            peer.request("ping")
            peer.close()
        EXPORTER.clear()
        gc.collect()

    return sessions


def load(url: str, sessions: int, calls: int) -> tuple[float, int]:
    """Seconds for the whole load, and how many `tools/call` spans strayed out of their session's trace."""
    EXPORTER.clear()
    started = time.perf_counter()
    trace_of_session = concurrent_sessions(url, sessions, calls)
    elapsed = time.perf_counter() - started
    spans = [span for span in EXPORTER.get_finished_spans() if span.name == "tools/call add"]
    assert len(spans) == sessions * calls, f"{len(spans)} spans for {sessions * calls} calls"
    return elapsed, len(strays(spans, trace_of_session))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--load", default="200x50", help="SESSIONSxCALLS")
    arguments = parser.parse_args()
    logging.disable(logging.INFO)  # the SDK and uvicorn log every session and request
    sessions, calls = (int(part) for part in arguments.load.split("x"))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)
    McpInstrumentor().instrument(tracer_provider=provider)
    from importlib import metadata

    print(f"mcp {metadata.version('mcp')}")
    failed = False
    held = retained(in_memory, arguments.sessions)
    print(f"memory: {held} bytes held by this package after {arguments.sessions} in-memory sessions")
    failed |= held >= 64 * 1024
    app = streamable_http_app(reference_app(), stateless=False, json_response=True)
    with serving(app) as url:
        held = retained(over_http(url), arguments.sessions)
        print(f"memory: {held} bytes held by this package after {arguments.sessions} streamable HTTP sessions")
        failed |= held >= 64 * 1024
        elapsed, strays = load(url, sessions, calls)
    print(
        f"load: {sessions} concurrent streamable HTTP sessions x {calls} calls in {elapsed:.1f} s "
        f"({sessions * calls / elapsed:.0f} calls/s), {strays} spans outside their session's trace"
    )
    failed |= strays > 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
