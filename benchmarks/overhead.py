"""The cost of tracing an MCP call: microseconds per `tools/call`, per configuration, in numbers.

    python benchmarks/overhead.py [--calls 2000] [--rounds 5] [--transports memory,stdio]

Each configuration runs in a fresh process (over stdio, a client process and a server process, both set up
the same way), round by round, interleaved, so that they share the machine's moods alike. Per round: N
sequential calls of a trivial tool from the SDK's `ClientSession`. Reported: the median and the min to max over
the rounds, the cost added over the bare SDK, and our added cost as a fraction of the mcp 2.x SDK's own tracing
(which records no metrics).

Configurations:
  bare        the SDK, no OpenTelemetry SDK configured (mcp 2.x's own tracing is then a no-op)
  sdk-tracing mcp 2.x's own tracing, with an SDK tracer provider
  ours-spans  this instrumentation, with an SDK tracer provider only
  ours        this instrumentation, with SDK tracer and meter providers
  ours-noop   this instrumentation, no providers configured
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MCP2 = not metadata.version("mcp").startswith("1.")
CONFIGURATIONS = (
    ["bare", "sdk-tracing", "ours-spans", "ours", "ours-noop"] if MCP2 else ["bare", "ours-spans", "ours", "ours-noop"]
)


def configure(configuration: str) -> None:
    """Set up OpenTelemetry as the configuration says, before mcp is used."""
    if configuration in ("bare", "ours-noop"):
        if configuration == "ours-noop":
            from opentelemetry_instrumentation_mcp import McpInstrumentor

            McpInstrumentor().instrument()
        return
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Discard()))
    trace.set_tracer_provider(tracer_provider)
    if configuration == "ours-spans":
        from opentelemetry_instrumentation_mcp import McpInstrumentor

        McpInstrumentor().instrument(tracer_provider=tracer_provider)
    elif configuration == "ours":
        from opentelemetry_instrumentation_mcp import McpInstrumentor

        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        metrics.set_meter_provider(meter_provider)
        McpInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)


async def measure(configuration: str, transport: str, calls: int) -> float:
    """Microseconds per call, over `calls` sequential calls after a warm-up."""
    sys.path.insert(0, str(ROOT))
    from mcp import StdioServerParameters

    from tests.mcp_compat import connected

    # over stdio the server is a process of its own, set up the same way
    serve = [__file__, "--serve", configuration]
    target = trivial_app() if transport == "memory" else StdioServerParameters(command=sys.executable, args=serve)
    async with connected(transport, target) as session:
        for _ in range(50):
            await session.call_tool("add", {"a": 1, "b": 2})
        started = time.perf_counter()
        for _ in range(calls):
            await session.call_tool("add", {"a": 1, "b": 2})
        return (time.perf_counter() - started) / calls * 1e6


def trivial_app() -> Any:
    """A server with one trivial tool, which does nothing traced of its own."""
    try:  # mcp 2.x
        from mcp.server.mcpserver import MCPServer as HighLevelServer
    except ImportError:  # mcp 1.x
        from mcp.server.fastmcp import FastMCP as HighLevelServer  # type: ignore[no-redef]
    app = HighLevelServer("benchmark")

    @app.tool()
    def add(a: int, b: int) -> int:
        return a + b

    return app


def child(configuration: str, transport: str, calls: int) -> None:
    import anyio

    configure(configuration)
    print(json.dumps(anyio.run(measure, configuration, transport, calls)))


def serve(configuration: str) -> None:
    configure(configuration)
    trivial_app().run()


def run(configuration: str, transport: str, calls: int) -> float:
    result = subprocess.run(
        [sys.executable, __file__, "--child", configuration, transport, str(calls)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--transports", default="memory,stdio")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        serve(arguments.serve)
        return
    if arguments.child:
        configuration, transport, calls = arguments.child
        child(configuration, transport, int(calls))
        return
    print(f"mcp {metadata.version('mcp')}, {arguments.calls} calls x {arguments.rounds} rounds, µs per tools/call\n")
    for transport in arguments.transports.split(","):
        samples: dict[str, list[float]] = {name: [] for name in CONFIGURATIONS}
        for _ in range(arguments.rounds):
            for name in CONFIGURATIONS:
                samples[name].append(run(name, transport, arguments.calls))
        bare = statistics.median(samples["bare"])
        sdk = statistics.median(samples["sdk-tracing"]) - bare if "sdk-tracing" in samples else None
        print(f"{transport}:")
        print(f"  {'configuration':<12} {'median':>9} {'min':>9} {'max':>9} {'added':>9} {'added %':>8}  vs SDK")
        for name, values in samples.items():
            median = statistics.median(values)
            added = median - bare
            ratio = f"{added / sdk:6.2f}x" if sdk and name.startswith("ours") else ""
            print(
                f"  {name:<12} {median:9.1f} {min(values):9.1f} {max(values):9.1f} {added:9.1f} "
                f"{100 * added / bare:7.1f}%  {ratio}"
            )
        print()


if __name__ == "__main__":
    main()
