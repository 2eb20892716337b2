"""The cost of tracing under load, end to end: many concurrent streamable HTTP sessions against a server process.

    python benchmarks/load.py [--sessions 100] [--calls 20] [--rounds 5] [--clients raw|sdk] [--instructions]

Per configuration and round, a server process (the SDK's high-level server with a trivial tool, stateful
streamable HTTP with JSON responses, under uvicorn on 127.0.0.1) exports over OTLP/HTTP to a receiver this script
runs, with the SDK's default batch schedule, and a client process opens `--sessions` sessions at once, each making
`--calls` sequential `tools/call`s. Reported, as medians over the rounds with their ratio to the bare run's: the
server process's CPU time per call (all its threads, the span processor's included) while the timed sessions run,
and the client's wall time from the first session's start to the last one's end.

With `--instructions` (Linux, with valgrind), each configuration's server runs under callgrind instead (once, unless
`--rounds` says otherwise), counted
from when the warm-up's spans have been exported to when the timed sessions' spans have (all its threads, the
export included): thousands of instructions per call, which CPU time on a shared machine cannot resolve (its rounds
spread by ±20 %). The server is some 50 times slower there, so the default load
is then 20 sessions of 10 calls; the client's wall time is not reported.

Clients:
  raw  (default) one thread per session speaking JSON-RPC over HTTP as a foreign client does, untraced, sending its
       own `traceparent` in the `_meta` of `initialize`: the server is the busy side, so its cost is what is seen
  sdk  the SDK's `ClientSession`s in one event loop, set up as the server is (traced in the traced configurations):
       the client process is then the busy side and its own tracing is measured as much as the server's, so the
       wall time says little of the server's cost (the server's CPU time still says it)

Configurations (of the server, and of `sdk` clients):
  bare         the SDK, no OpenTelemetry SDK configured
  sdk-tracing  mcp 2.x's own tracing, with an SDK tracer provider (mcp 2.x only)
  floor-spans  no instrumentation: the least OpenTelemetry work that records what `ours-spans` records, an ASGI
               middleware making a SERVER span per POST with the eleven attributes ours records on a streamable
               HTTP `tools/call` (values of their types and sizes, not read from the message), current while the
               app handles it (with raw clients only: `sdk` clients are untraced here)
  ours-spans   this instrumentation, with an SDK tracer provider only
  floor        `floor-spans`, and the duration record `ours` makes per POST with its seven attributes
  ours         this instrumentation, with SDK tracer and meter providers (metrics exported every 60 s, the
               default: at most once in a run)
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MCP2 = not metadata.version("mcp").startswith("1.")
CONFIGURATIONS = ["bare", *(["sdk-tracing"] if MCP2 else []), "floor-spans", "ours-spans", "floor", "ours"]
FLOOR_SPAN_ATTRIBUTES = {
    "mcp.method.name": "tools/call",
    "gen_ai.operation.name": "execute_tool",
    "gen_ai.tool.name": "add",
    "jsonrpc.request.id": "7",
    "mcp.protocol.version": "2025-11-25",
    "mcp.session.id": "0123456789abcdef0123456789abcdef",
    "network.transport": "tcp",
    "network.protocol.name": "http",
    "network.protocol.version": "1.1",
    "client.address": "127.0.0.1",
    "client.port": 51234,
}
FLOOR_DURATION_ATTRIBUTES = {
    key: FLOOR_SPAN_ATTRIBUTES[key]
    for key in sorted(FLOOR_SPAN_ATTRIBUTES)
    if not key.startswith(("client.", "jsonrpc.", "mcp.session."))
}


def configure(configuration: str, endpoint: str) -> Any:
    """Set up OpenTelemetry as the configuration says, exporting to `endpoint`, before mcp is used; for the floor
    configurations, return the ASGI middleware that records their telemetry (their providers are not global)."""
    if configuration == "bare":
        return None
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    meter_provider = None
    if configuration in ("floor", "ours"):
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"))
        meter_provider = MeterProvider(metric_readers=[reader])
    if configuration.startswith("floor"):
        return floor_middleware(tracer_provider, meter_provider)
    trace.set_tracer_provider(tracer_provider)
    if configuration == "sdk-tracing":
        return None
    from opentelemetry_instrumentation_mcp import McpInstrumentor

    if meter_provider is None:
        McpInstrumentor().instrument(tracer_provider=tracer_provider)
    else:
        metrics.set_meter_provider(meter_provider)
        McpInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    return None


def floor_middleware(tracer_provider: Any, meter_provider: Any) -> Callable[[Any], Any]:
    """An ASGI middleware that makes a SERVER span per POST, and with a meter provider a duration record: what
    ours records per message over streamable HTTP, with no MCP code at all, as the floor of its cost."""
    from timeit import default_timer

    from opentelemetry import context, trace
    from opentelemetry.trace import SpanKind

    from opentelemetry_instrumentation_mcp._conventions import BUCKETS

    tracer = tracer_provider.get_tracer("floor")
    histogram = None
    if meter_provider is not None:
        histogram = meter_provider.get_meter("floor").create_histogram(
            "mcp.server.operation.duration", unit="s", explicit_bucket_boundaries_advisory=BUCKETS
        )

    def middleware(app: Any) -> Any:
        async def traced(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope["method"] != "POST":
                return await app(scope, receive, send)
            started = default_timer()
            span = tracer.start_span("tools/call add", None, SpanKind.SERVER, FLOOR_SPAN_ATTRIBUTES)
            token = context.attach(trace.set_span_in_context(span))
            try:
                await app(scope, receive, send)
            finally:
                context.detach(token)
                span.end()
                if histogram is not None:
                    histogram.record(default_timer() - started, FLOOR_DURATION_ATTRIBUTES)
            return None

        return traced

    return middleware


def serve(configuration: str, endpoint: str, port: int) -> None:
    import uvicorn

    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]
    from overhead import fastmcp_app

    from support.compat import streamable_http_app

    middleware = configure(configuration, endpoint)
    # a line per session opened and closed, and (mcp 1.x) a traceback per client that leaves: not the subject
    logging.getLogger("mcp").setLevel(logging.CRITICAL)
    app = streamable_http_app(fastmcp_app(), stateless=False, json_response=True)
    if middleware is not None:
        app = middleware(app)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


async def load_with_sdk_clients(url: str, sessions: int, calls: int) -> float:
    """Seconds from the first session's start to the last one's end, the SDK's `ClientSession`s in one loop."""
    import anyio

    from support.compat import is_error
    from support.sessions import connected

    async def session() -> None:
        async with connected("http", url) as client:
            for _ in range(calls):
                assert not is_error(await client.call_tool("add", {"a": 1, "b": 2}))

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(sessions):
            group.start_soon(session)
    return time.perf_counter() - started


def load_with_raw_clients(url: str, sessions: int, calls: int) -> float:
    """Seconds from the first session's start to the last one's end, a thread per raw session."""
    import secrets
    from concurrent.futures import ThreadPoolExecutor

    from support.peers import StreamableHttpPeer

    def session() -> None:
        peer = StreamableHttpPeer(url.removesuffix("/mcp"))  # it posts to /mcp
        try:
            peer.initialize({"traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"})
            for _ in range(calls):
                answer = peer.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
                assert not answer["result"].get("isError"), answer
        finally:
            peer.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(sessions) as pool:
        for future in [pool.submit(session) for _ in range(sessions)]:
            future.result()
    return time.perf_counter() - started


def client(clients: str, configuration: str, endpoint: str, url: str, *, sessions: int, calls: int) -> None:
    """Warm up, say `ready` and wait for a line on stdin, then run the timed sessions and print their seconds."""
    import anyio

    sys.path.insert(0, str(ROOT / "tests"))
    if clients == "sdk":
        if not configuration.startswith("floor"):
            configure(configuration, endpoint)

        def timed(count: int, per_session: int) -> float:
            return anyio.run(load_with_sdk_clients, url, count, per_session)
    else:

        def timed(count: int, per_session: int) -> float:
            return load_with_raw_clients(url, count, per_session)

    timed(5, 5)  # warm-up: imports, first connections, the server's first calls
    print("ready", flush=True)
    sys.stdin.readline()
    print(timed(sessions, calls), flush=True)


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system, all threads) a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(port: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the server did not listen on {port}")


EXPORT_SETTLE = 6.0
"""Seconds without a new span at the receiver after which the server has exported all it had: longer than the batch
span processor's default schedule (5 s)."""


def settle(spans_received: Callable[[], int]) -> None:
    """Wait until the receiver has had no new span for `EXPORT_SETTLE` seconds."""
    last, since = spans_received(), time.monotonic()
    while time.monotonic() - since < EXPORT_SETTLE:
        time.sleep(0.25)
        now = spans_received()
        if now != last:
            last, since = now, time.monotonic()


def run(
    clients: str,
    configuration: str,
    endpoint: str,
    sessions: int,
    calls: int,
    *,
    spans_received: Callable[[], int],
    counted: bool = False,
) -> tuple[float, float]:
    """One round of one configuration: the server's CPU milliseconds per call (`counted`: thousands of instructions
    under callgrind), and the client's wall seconds.

    Counted, the server's instructions are counted from when the warm-up's spans have all been exported to when the
    timed sessions' spans have: every configuration's count holds the export of its own spans, and only those. (A
    count stopped as the last session ends holds whatever batch the processor's schedule happened to export in
    between: one run counted ours with an export of about 520 thousand instructions per call, and the SDK's own
    tracing with none.)"""
    port = free_port()
    script = str(Path(__file__).resolve())
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    scratch = tempfile.TemporaryDirectory() if counted else None
    output = Path(scratch.name if scratch else ".") / "callgrind"
    callgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={output}"]
    server = subprocess.Popen(
        [*(callgrind if counted else []), sys.executable, script, "--serve", configuration, endpoint, str(port)],
        env=env,
        stderr=subprocess.DEVNULL if counted else None,
    )
    try:
        wait_for(port, 600 if counted else 20)
        url = f"http://127.0.0.1:{port}/mcp"
        command = [sys.executable, script, "--client", clients, configuration, endpoint, url, str(sessions), str(calls)]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        if counted:
            settle(spans_received)
        before = cpu_seconds(server.pid)
        if counted:
            subprocess.run(["callgrind_control", "--instr=on", str(server.pid)], check=True, capture_output=True)
        process.stdin.write("\n")
        process.stdin.flush()
        wall = float(process.stdout.readline())
        if counted:
            settle(spans_received)
            subprocess.run(["callgrind_control", "--instr=off", str(server.pid)], check=True, capture_output=True)
        server_ms = (cpu_seconds(server.pid) - before) / (sessions * calls) * 1000
        process.communicate()
    finally:
        server.terminate()
        server.wait(120 if counted else 10)
    if scratch is not None:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from overhead import callgrind_total

        with scratch:
            server_ms = callgrind_total(output) / (sessions * calls) / 1000
    return server_ms, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, help="100, or 20 with --instructions")
    parser.add_argument("--calls", type=int, help="20, or 10 with --instructions")
    parser.add_argument("--rounds", type=int, help="5, or 1 with --instructions")
    parser.add_argument("--clients", choices=["raw", "sdk"], default="raw")
    parser.add_argument("--instructions", action="store_true", help="count the server's instructions, once")
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=6, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        configuration, endpoint, port = arguments.serve
        serve(configuration, endpoint, int(port))
        return
    if arguments.client:
        clients, configuration, endpoint, url, sessions, calls = arguments.client
        client(clients, configuration, endpoint, url, sessions=int(sessions), calls=int(calls))
        return
    from opentelemetry_instrumentation_mcp.viewer import OtlpReceiver

    counted = arguments.instructions
    rounds = arguments.rounds or (1 if counted else 5)
    sessions = arguments.sessions or (20 if counted else 100)
    calls = arguments.calls or (10 if counted else 20)

    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in CONFIGURATIONS}
    received: dict[str, int] = dict.fromkeys(CONFIGURATIONS, 0)
    with OtlpReceiver(store=False) as receiver:
        for _ in range(rounds):
            for name in CONFIGURATIONS:

                def count(spans: list[Any], name: str = name) -> None:
                    received[name] += len(spans)

                receiver._on_spans = count  # the receiver's one listener, per configuration
                samples[name].append(
                    run(
                        arguments.clients,
                        name,
                        receiver.endpoint,
                        sessions,
                        calls,
                        spans_received=lambda name=name: received[name],
                        counted=counted,
                    )
                )
    measure = f"{rounds} rounds (medians, min to max)" if rounds > 1 else "once"
    if counted:
        measure = f"thousand instructions per call, {measure}"
    print(
        f"mcp {metadata.version('mcp')}, {sessions} concurrent streamable HTTP sessions x {calls} calls, "
        f"{arguments.clients} clients, {measure}\n"
    )
    bare_server = statistics.median(server for server, _ in samples["bare"])
    bare_wall = statistics.median(wall for _, wall in samples["bare"])
    figure = "server k instr/call" if counted else "server CPU ms/call"
    digits = 1 if counted else 3
    walls = "" if counted else f" {'client wall s':>21} {'x bare':>7}"
    print(f"  {'configuration':<12} {figure:>25} {'x bare':>7}{walls} {'spans':>8}")
    for name, values in samples.items():
        server = [value for value, _ in values]
        wall = [value for _, value in values]
        shown = f"{statistics.median(server):8.{digits}f}"
        spread = "" if rounds == 1 else f" ({min(server):.{digits}f}-{max(server):.{digits}f})"
        wall_median = statistics.median(wall)
        wall_shown = (
            "" if counted else f" {wall_median:7.2f} ({min(wall):.2f}-{max(wall):.2f}) {wall_median / bare_wall:7.2f}"
        )
        print(
            f"  {name:<12} {shown}{spread:>17} {statistics.median(server) / bare_server:7.2f}{wall_shown}"
            f" {received[name]:>8}"
        )
    print_goals({name: statistics.median(server for server, _ in values) for name, values in samples.items()})


def print_goals(server: dict[str, float]) -> None:
    """Issue 22's load goal, with a pass/fail mark, and what ours adds to bare against what its floor adds."""
    bare = server["bare"]
    ratio = server["ours"] / bare
    print()
    if MCP2:
        limit, against = server["sdk-tracing"] / bare, "the SDK's own tracing"
    else:
        limit, against = 1.12, "the goal"
    print(f"  goal: ours x{ratio:.2f} bare <= x{limit:.2f} ({against}): {'pass' if ratio <= limit else 'FAIL'}")
    for ours, floor in (("ours-spans", "floor-spans"), ("ours", "floor")):
        added, floor_added = server[ours] - bare, server[floor] - bare
        print(f"  {ours} adds {added:.1f}, its floor {floor_added:.1f}: {added / floor_added:.2f}x the floor")


if __name__ == "__main__":
    main()
