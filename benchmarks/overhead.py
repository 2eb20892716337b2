"""The cost of tracing an MCP call: microseconds per `tools/call`, per configuration, in numbers.

    python benchmarks/overhead.py [--calls N] [--rounds N] [--servers fastmcp,light] [--transports memory,stdio]
                                  [--instructions | --profile]

Each configuration runs in a fresh process (over stdio, a client process and a server process, both set up
the same way), round by round, interleaved, so that they share the machine's moods alike. Per round: N
sequential calls of a trivial tool from the SDK's `ClientSession`, after 500 calls of warm-up. In memory, client and
server share one process and the cost is its CPU time per call (all threads, the span processor's included),
which other processes on the machine do not inflate; over stdio it is wall time. A configuration's added cost
is taken round by round against that round's bare run, and its median over the rounds is reported, with the
ratio to the reference tracer's added cost: the mcp 2.x SDK's own tracing, or Traceloop's instrumentation
(`opentelemetry-instrumentation-mcp`, where installed) on mcp 1.x.

With `--instructions` (Linux, with valgrind), each configuration runs under callgrind instead, once a round (one
round unless `--rounds` says more), client and server alike, instrumented only while the timed calls run: the
figure is the instructions executed per call, in thousands, every thread and process of the exchange counted. Run
alone, it moves from run to run within 0.5 %, which the time on a shared machine does by more than the differences
it is meant to show. Most of that is the memory layout, which the size of the environment moves: each count runs
with an environment of a random size, so that rounds sample layouts, and where a difference is smaller than a
count's spread (ours against the reference within 1 %; two counts of 11 million on mcp 1.x's high-level server),
medians of rounds tell it. Beside other work the calls take longer and the span processor's timer exports more
often. It counts no cache misses, no waits, no kernel time. valgrind is a system package (Debian: `apt install
valgrind`).

With `--profile`, each configuration (in memory only, where client and server share the process) runs its timed
calls once under a tracer of bytecodes instead (`sys.settrace` with opcode events, in the event loop's thread):
the bytecodes executed per exchange, in all and by package (this one, OpenTelemetry, mcp, the rest), then the
functions of this package, of OpenTelemetry and of the mcp SDK's tracing (`mcp/*/_otel.py`) by their own bytecodes
per exchange, with the times they are entered (a coroutine is entered again at each resumption). It is the
per-function view, which callgrind cannot give (it sees the interpreter's C functions), and it is exact: the same
code gives the same counts on any machine. A bytecode's cost varies (a C call inside one is not seen), so it says
where Python runs, and `--instructions` says what that costs.

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
  floor       mcp 2.x: the least code that records the spans `ours-spans` records for these calls, with an SDK
              tracer provider (`benchmarks/floor.py`): what any code recording them costs at least
  records     no MCP call: the OpenTelemetry SDK's own cost of the two duration records an exchange makes (the
              attributes `ours` records over the transport, the conventions' buckets, in a sampled span's context
              as ours are), per pair, in a loop; measured with `ours`
Spans go to a `BatchSpanProcessor` with an exporter that discards them; metrics to an in-memory reader.

At the end, every cost goal (issue 22) is printed with its figure and a pass/fail mark: our spans against the
reference tracer's, our metrics against the records alone, no providers against bare.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
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
    *(["floor"] if MCP2 else []),
]


def configure(configuration: str) -> Any:
    """Set up OpenTelemetry as the configuration says, before mcp is used; the metric reader of `ours`."""
    if configuration == "bare":
        return None
    from opentelemetry_instrumentation_mcp import McpInstrumentor

    if configuration == "ours-noop":
        McpInstrumentor().instrument()
        return None
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
    elif configuration == "floor":
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import floor

        floor.install(tracer_provider)
    elif configuration == "ours":
        reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[reader])
        metrics.set_meter_provider(meter_provider)
        McpInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        return reader
    return None


def _child_processes() -> list[int]:
    """The processes this one started (Linux): the stdio server."""
    return [int(pid) for task in Path("/proc/self/task").iterdir() for pid in (task / "children").read_text().split()]


async def measure(
    configuration: str, server: str, transport: str, calls: int, *, counted: bool = False, profiler: Any = None
) -> float:
    """Microseconds per call (CPU time in memory, wall time over stdio), over `calls` calls after a warm-up.

    `counted`: under callgrind, whose instrumentation the parent turns on and off, the calls run between two
    handshakes on stdin/stdout (`ready` with the processes to count, then `done`).
    """
    sys.path.insert(0, str(ROOT / "tests"))
    from mcp import StdioServerParameters

    from support.sessions import connected

    # over stdio the server is a process of its own, set up the same way
    serve = [__file__, "--serve", configuration, server]
    target = APPS[server]() if transport == "memory" else StdioServerParameters(command=sys.executable, args=serve)
    clock = time.process_time if transport == "memory" else time.perf_counter
    async with connected(transport, target) as session:
        for _ in range(WARM_UP):
            await session.call_tool("add", {"a": 1, "b": 2})
        if counted:
            print("ready", *[os.getpid(), *_child_processes()], flush=True)
            sys.stdin.readline()
        if profiler is not None:
            profiler.enable()
        started = clock()
        for _ in range(calls):
            await session.call_tool("add", {"a": 1, "b": 2})
        elapsed = (clock() - started) / calls * 1e6
        if profiler is not None:
            profiler.disable()
        if counted:
            print("done", flush=True)
            sys.stdin.readline()
        return elapsed


async def records_alone(server: str, transport: str, calls: int, *, counted: bool = False) -> float:
    """Microseconds (CPU time) per pair of duration records made by the OpenTelemetry SDK alone, with the
    attributes this instrumentation records for one call to `server` over `transport`, in a sampled span's context:
    those it recorded in memory, and over stdio `network.transport` too, as both sides record it there."""
    sys.path.insert(0, str(ROOT / "tests"))
    from opentelemetry import trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from opentelemetry_instrumentation_mcp._conventions import BUCKETS
    from support.sessions import connected

    reader = configure("ours")
    async with connected("memory", APPS[server]()) as session:
        await session.call_tool("add", {"a": 1, "b": 2})
    recorded = {
        metric.name: [dict(point.attributes) for point in metric.data.data_points]
        for resource in reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("records")
    pairs = []
    for name in ("mcp.server.operation.duration", "mcp.client.operation.duration"):
        histogram = meter.create_histogram(name, unit="s", explicit_bucket_boundaries_advisory=BUCKETS)
        attributes = [point for point in recorded[name] if point.get("gen_ai.tool.name") == "add"][-1]
        if transport == "stdio":
            attributes = dict(sorted({**attributes, "network.transport": "pipe"}.items()))
        pairs.append((histogram, attributes))
    (server_histogram, server_attributes), (client_histogram, client_attributes) = pairs
    span = TracerProvider().get_tracer("records").start_span("operation")
    context = trace.set_span_in_context(span)
    for _ in range(WARM_UP):
        server_histogram.record(0.001, server_attributes, context)
        client_histogram.record(0.001, client_attributes, context)
    if counted:
        print("ready", os.getpid(), flush=True)
        sys.stdin.readline()
    started = time.process_time()
    for _ in range(calls):
        server_histogram.record(0.001, server_attributes, context)
        client_histogram.record(0.001, client_attributes, context)
    elapsed = (time.process_time() - started) / calls * 1e6
    if counted:
        print("done", flush=True)
        sys.stdin.readline()
    return elapsed


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


def child(configuration: str, server: str, transport: str, calls: int, *, counted: bool, profiled: bool) -> None:
    import anyio

    if configuration == "records":
        result = anyio.run(functools.partial(records_alone, server, transport, calls, counted=counted))
    else:
        configure(configuration)
        profiler = BytecodeCounter() if profiled else None
        result = anyio.run(
            functools.partial(measure, configuration, server, transport, calls, counted=counted, profiler=profiler)
        )
        if profiler is not None:
            profiler.print_per_exchange(calls)
            return
    print(json.dumps(result))


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


def count(configuration: str, server: str, transport: str, calls: int) -> float:
    """Thousands of instructions per call: the child (and its stdio server) under callgrind, instrumented only while
    the timed calls run."""
    with tempfile.TemporaryDirectory() as scratch:
        prefix = Path(scratch) / "callgrind"
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--trace-children=yes",
            f"--callgrind-out-file={prefix}.%p",
            *[sys.executable, __file__, "--child", configuration, server, transport, str(calls), "--counted"],
        ]
        # an environment of a random size: a round is a sample of the memory layout, which moves a count by up to
        # 0.4 % (the same code read 5 thousand instructions apart with 777 bytes more of environment)
        layout = {**os.environ, "OVERHEAD_LAYOUT": "x" * random.randrange(4096)}
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env=layout,
        )
        assert process.stdin is not None
        assert process.stdout is not None
        ready, *pids = process.stdout.readline().split()
        assert ready == "ready", ready
        subprocess.run(["callgrind_control", "--instr=on", *pids], check=True, capture_output=True)
        process.stdin.write("\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "done"
        subprocess.run(["callgrind_control", "--instr=off", *pids], check=True, capture_output=True)
        process.stdin.write("\n")
        process.stdin.flush()
        process.communicate()
        return sum(callgrind_total(output) for output in Path(scratch).iterdir()) / calls / 1000


def callgrind_total(output: Path) -> int:
    """The instructions a callgrind output file counted (0 where it counted none)."""
    totals = [line for line in output.read_text().splitlines() if line.startswith("totals:")]
    return int(totals[0].split()[1]) if totals else 0


def profile(configurations: list[str], servers: list[str], transports: list[str], calls: int = 500) -> None:
    """Each configuration's timed calls in memory under the bytecode tracer, each in a fresh process."""
    for server in servers:
        for configuration in configurations:
            if "memory" in transports and configuration != "records":
                print(f"\n{configuration}, {server} server, in memory (bytecodes per exchange):", flush=True)
                command = [
                    sys.executable,
                    __file__,
                    "--child",
                    configuration,
                    server,
                    "memory",
                    str(calls),
                    "--profile",
                ]
                subprocess.run(command, check=True, cwd=ROOT)


class BytecodeCounter:
    """Counts the bytecodes each function executes, and its entries, while enabled (this thread only)."""

    def __init__(self) -> None:
        self.bytecodes: dict[Any, int] = {}
        self.entries: dict[Any, int] = {}

    def _trace(self, frame: Any, event: str, arg: Any) -> Any:
        code = frame.f_code
        if event == "opcode":
            self.bytecodes[code] = self.bytecodes.get(code, 0) + 1
        elif event == "call":
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
            self.entries[code] = self.entries.get(code, 0) + 1
        return self._trace

    def enable(self) -> None:
        sys.settrace(self._trace)

    def disable(self) -> None:
        sys.settrace(None)

    def print_per_exchange(self, calls: int) -> None:
        """The bytecodes per exchange by package, then those of this package's, OpenTelemetry's and the mcp SDK's
        tracing functions, most first."""

        def package(code: Any) -> str:
            file = code.co_filename
            if "opentelemetry_instrumentation_mcp" in file:
                return "ours"
            if "opentelemetry" in file:
                return "opentelemetry"
            return "mcp" if f"{os.sep}mcp{os.sep}" in file else "other"

        totals: dict[str, int] = {}
        for code, count in self.bytecodes.items():
            totals[package(code)] = totals.get(package(code), 0) + count
        shown = ", ".join(f"{name} {totals.get(name, 0) / calls:.0f}" for name in ("ours", "opentelemetry", "mcp"))
        print(f"  all {sum(totals.values()) / calls:.0f}: {shown}, other {totals.get('other', 0) / calls:.0f}")
        rows = [
            (count / calls, self.entries.get(code, 0) / calls, code)
            for code, count in self.bytecodes.items()
            if package(code) in ("ours", "opentelemetry") or code.co_filename.endswith("_otel.py")
        ]
        print(f"  {'bytecodes':>9} {'entries':>7}  function")
        for count, entries, code in sorted(rows, key=lambda row: -row[0])[:40]:
            where = f"{Path(code.co_filename).parent.name}/{Path(code.co_filename).name}:{code.co_firstlineno}"
            print(f"  {count:9.1f} {entries:7.1f}  {where} {code.co_name}")


def run(configuration: str, server: str, transport: str, calls: int) -> float:
    result = subprocess.run(
        [sys.executable, __file__, "--child", configuration, server, transport, str(calls)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return float(result.stdout.strip().splitlines()[-1])


def report(samples: dict[str, list[float]]) -> tuple[dict[str, float], float]:
    """Print a cell's table; return each configuration's median added cost, and the bare median."""
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
    return {name: statistics.median(values) for name, values in added.items()}, statistics.median(bare)


Cell = tuple[str, str]
"""(transport, server)"""


def print_goals(figures: dict[Cell, tuple[dict[str, float], float]], records: dict[Cell, float]) -> None:
    """Each cost goal with its figure, and whether it is met."""
    print("\ngoals:")

    def goal(cell: Cell, what: str, figure: float, limit: float, unit: str = "x") -> None:
        shown = f"{figure:.2f}x" if unit == "x" else f"{100 * figure:+.1f}%"
        wanted = f"{limit:.2f}x" if unit == "x" else f"{100 * limit:+.1f}%"
        mark = "pass" if figure <= limit else "FAIL"
        print(f"  {mark}  {', '.join(cell):<16} {what:<50} {shown:>8}  (<= {wanted})")

    for cell, (added, bare) in figures.items():
        reference, spans, full = added.get(REFERENCE), added.get("ours-spans"), added.get("ours")
        if reference and spans is not None and (MCP2 or cell[0] == "stdio"):
            goal(cell, f"spans, against {REFERENCE}", spans / reference, 1.0)
            if not MCP2 and full is not None:
                goal(cell, f"spans and metrics, against {REFERENCE}", full / reference, 1.25)
        if spans is not None and full is not None and cell in records:
            goal(cell, "metrics, against the OpenTelemetry SDK's records", (full - spans) / records[cell], 1.10)
        if "ours-noop" in added:
            goal(cell, "no providers, against bare", added["ours-noop"] / bare, 0.0 if MCP2 else 0.02, unit="%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, help="per round: 1000, or 200 with --instructions")
    parser.add_argument("--rounds", type=int, help="15, or 1 with --instructions")
    parser.add_argument("--servers", default="fastmcp,light")
    parser.add_argument("--transports", default="memory,stdio")
    parser.add_argument("--configurations", default=",".join(CONFIGURATIONS))
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind")
    parser.add_argument("--profile", action="store_true", help="print the bytecodes per exchange, function by function")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--counted", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        serve(*arguments.serve)
        return
    if arguments.child:
        configuration, server, transport, calls = arguments.child
        child(configuration, server, transport, int(calls), counted=arguments.counted, profiled=arguments.profile)
        return
    if arguments.profile:
        profile(arguments.configurations.split(","), arguments.servers.split(","), arguments.transports.split(","))
        return
    measured = count if arguments.instructions else run
    rounds = arguments.rounds or (1 if arguments.instructions else 15)
    calls = arguments.calls or (200 if arguments.instructions else 1000)
    configurations = ["bare", *(name for name in arguments.configurations.split(",") if name != "bare")]
    unit = "thousand instructions" if arguments.instructions else "µs"
    print(f"mcp {metadata.version('mcp')}, {calls} calls x {rounds} rounds, {unit} per tools/call")
    figures: dict[Cell, tuple[dict[str, float], float]] = {}
    records: dict[Cell, float] = {}
    for transport in arguments.transports.split(","):
        for server in arguments.servers.split(","):
            samples: dict[str, list[float]] = {name: [] for name in configurations}
            for _ in range(rounds):
                for name in configurations:
                    samples[name].append(measured(name, server, transport, calls))
            clock = "CPU time" if transport == "memory" else "wall time"
            clock = "instructions, all processes" if arguments.instructions else clock
            print(f"\n{transport}, {server} server ({clock}):")
            figures[transport, server] = report(samples)
            if "ours" in configurations:
                cell = transport, server
                records[cell] = statistics.median(measured("records", server, transport, calls) for _ in range(rounds))
                print(f"  {'records':<12} {records[cell]:8.1f}  the two duration records alone, per exchange")
    print_goals(figures, records)


if __name__ == "__main__":
    main()
