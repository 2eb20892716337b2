"""The cost of tracing an MCP call: microseconds per `tools/call`, per configuration, in numbers.

    python benchmarks/overhead.py [--calls 1000] [--rounds 15] [--servers fastmcp,light] [--transports memory,stdio]

Each configuration runs in a fresh process (over stdio, a client process and a server process, both set up
the same way), round by round, interleaved, so that they share the machine's moods alike. Per round: N
sequential calls of a trivial tool from the SDK's `ClientSession`, after 500 calls of warm-up. In memory, client and
server share one process and the cost is its CPU time per call (all threads, the span processor's included),
which other processes on the machine do not inflate; over stdio it is wall time. A configuration's added cost
is taken round by round against that round's bare run, and its median over the rounds is reported, with the
ratio to the reference tracer's added cost: the mcp 2.x SDK's own tracing, or Traceloop's instrumentation
(`opentelemetry-instrumentation-mcp`, where installed) on mcp 1.x.

Servers: `fastmcp`, the SDK's high-level server (`MCPServer` / `FastMCP`) with a tool `add(a, b)`;
`light`, the SDK's low-level `Server` with one handler that answers at once (no validation), where a
fixed cost per message weighs most.

Configurations:
  bare        the SDK, no OpenTelemetry SDK configured (mcp 2.x's own tracing is then a no-op)
  sdk-tracing mcp 2.x's own tracing, with an SDK tracer provider
  traceloop   Traceloop's instrumentation (mcp 1.x), with an SDK tracer provider
  ours-spans  this instrumentation, with an SDK tracer provider only
  ours        this instrumentation, with SDK tracer and meter providers
  ours-noop   this instrumentation, no providers configured
Spans go to a `BatchSpanProcessor` with an exporter that discards them; metrics to an in-memory reader.
"""

from __future__ import annotations

import argparse
import importlib.util
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
WARM_UP = 500
"""Calls before the clock starts: the first few hundred are slower (first exports, caches filling)."""
REFERENCE = "sdk-tracing" if MCP2 else "traceloop"
CONFIGURATIONS = [
    "bare",
    *([REFERENCE] if MCP2 or importlib.util.find_spec("opentelemetry.instrumentation.mcp") else []),
    "ours-spans",
    "ours",
    "ours-noop",
]


def configure(configuration: str) -> None:
    """Set up OpenTelemetry as the configuration says, before mcp is used."""
    if configuration == "bare":
        return
    from opentelemetry_instrumentation_mcp import McpInstrumentor

    if configuration == "ours-noop":
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
    if configuration == "traceloop":
        from opentelemetry.instrumentation.mcp import McpInstrumentor as TraceloopInstrumentor

        TraceloopInstrumentor().instrument(tracer_provider=tracer_provider)
    elif configuration == "ours-spans":
        McpInstrumentor().instrument(tracer_provider=tracer_provider)
    elif configuration == "ours":
        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        metrics.set_meter_provider(meter_provider)
        McpInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)


async def measure(configuration: str, server: str, transport: str, calls: int) -> float:
    """Microseconds per call (CPU time in memory, wall time over stdio), over `calls` calls after a warm-up."""
    sys.path.insert(0, str(ROOT))
    from mcp import StdioServerParameters

    from tests.mcp_compat import connected

    # over stdio the server is a process of its own, set up the same way
    serve = [__file__, "--serve", configuration, server]
    target = APPS[server]() if transport == "memory" else StdioServerParameters(command=sys.executable, args=serve)
    clock = time.process_time if transport == "memory" else time.perf_counter
    async with connected(transport, target) as session:
        for _ in range(WARM_UP):
            await session.call_tool("add", {"a": 1, "b": 2})
        started = clock()
        for _ in range(calls):
            await session.call_tool("add", {"a": 1, "b": 2})
        return (clock() - started) / calls * 1e6


def fastmcp_app() -> Any:
    """The SDK's high-level server with one trivial tool, which does nothing traced of its own."""
    try:  # mcp 2.x
        from mcp.server.mcpserver import MCPServer as HighLevelServer
    except ImportError:  # mcp 1.x
        from mcp.server.fastmcp import FastMCP as HighLevelServer  # type: ignore[no-redef]
    app = HighLevelServer("benchmark")

    @app.tool()
    def add(a: int, b: int) -> int:
        return a + b

    return app


def light_app() -> Any:
    """The SDK's low-level server, answering `tools/call` at once."""
    from mcp import types
    from mcp.server.lowlevel.server import Server

    tool = types.Tool(name="add", inputSchema={"type": "object"})
    answer = types.CallToolResult(content=[types.TextContent(type="text", text="3")])
    if MCP2:

        async def on_list_tools(ctx: Any, params: Any) -> Any:
            return types.ListToolsResult(tools=[tool])

        async def on_call_tool(ctx: Any, params: Any) -> Any:
            return answer

        return Server("light", on_list_tools=on_list_tools, on_call_tool=on_call_tool)
    server: Any = Server("light")

    @server.list_tools()  # type: ignore[misc]
    async def list_tools() -> list[Any]:
        return [tool]

    @server.call_tool(validate_input=False)  # type: ignore[misc]
    async def call_tool(name: str, arguments: dict[str, Any]) -> Any:
        return answer

    return server


APPS = {"fastmcp": fastmcp_app, "light": light_app}


def child(configuration: str, server: str, transport: str, calls: int) -> None:
    import anyio

    configure(configuration)
    print(json.dumps(anyio.run(measure, configuration, server, transport, calls)))


def serve(configuration: str, server: str) -> None:
    import anyio
    from mcp.server.stdio import stdio_server

    configure(configuration)
    app = APPS[server]()
    if server == "fastmcp":
        app.run()
        return

    async def run() -> None:
        async with stdio_server() as (read, write):
            await app.run(read, write, app.create_initialization_options())

    anyio.run(run)


def run(configuration: str, server: str, transport: str, calls: int) -> float:
    result = subprocess.run(
        [sys.executable, __file__, "--child", configuration, server, transport, str(calls)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return float(result.stdout.strip().splitlines()[-1])


def report(samples: dict[str, list[float]]) -> None:
    bare = samples["bare"]
    added = {name: [value - base for value, base in zip(values, bare, strict=True)] for name, values in samples.items()}
    reference = statistics.median(added[REFERENCE]) if REFERENCE in added else None
    print(f"  {'configuration':<12} {'median':>8} {'min':>8} {'max':>8} {'added':>8} {'added %':>8}  vs {REFERENCE}")
    for name, values in samples.items():
        extra = statistics.median(added[name])
        ratio = f"{extra / reference:6.2f}x" if reference and name.startswith("ours") else ""
        print(
            f"  {name:<12} {statistics.median(values):8.1f} {min(values):8.1f} {max(values):8.1f} {extra:8.1f} "
            f"{100 * extra / statistics.median(bare):7.1f}%  {ratio}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--servers", default="fastmcp,light")
    parser.add_argument("--transports", default="memory,stdio")
    parser.add_argument("--configurations", default=",".join(CONFIGURATIONS))
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        serve(*arguments.serve)
        return
    if arguments.child:
        configuration, server, transport, calls = arguments.child
        child(configuration, server, transport, int(calls))
        return
    configurations = ["bare", *(name for name in arguments.configurations.split(",") if name != "bare")]
    print(f"mcp {metadata.version('mcp')}, {arguments.calls} calls x {arguments.rounds} rounds, µs per tools/call")
    for transport in arguments.transports.split(","):
        for server in arguments.servers.split(","):
            samples: dict[str, list[float]] = {name: [] for name in configurations}
            for _ in range(arguments.rounds):
                for name in configurations:
                    samples[name].append(run(name, server, transport, arguments.calls))
            clock = "CPU time" if transport == "memory" else "wall time"
            print(f"\n{transport}, {server} server ({clock}):")
            report(samples)


if __name__ == "__main__":
    main()
