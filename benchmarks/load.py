"""The cost of tracing under load, end to end: wall time of many concurrent streamable HTTP sessions.

    python benchmarks/load.py [--sessions 100] [--calls 20] [--rounds 5]

Per configuration and round, a server process (the SDK's high-level server, stateful streamable HTTP under
uvicorn on 127.0.0.1) and a client process (the SDK's `ClientSession`s, `--sessions` at once, each making
`--calls` sequential `tools/call`s of a trivial tool), both set up alike, export over OTLP/HTTP to a receiver
this script runs, with the SDK's default batch schedule. Reported: the client's wall time from the first
session's start to the last one's end, the median over the rounds, and its ratio to the bare run's.

Configurations (the same on both sides):
  bare         the SDK, no OpenTelemetry SDK configured
  sdk-tracing  mcp 2.x's own tracing, with an SDK tracer provider (mcp 2.x only)
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
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MCP2 = not metadata.version("mcp").startswith("1.")
CONFIGURATIONS = ["bare", *(["sdk-tracing"] if MCP2 else []), "ours"]


def configure(configuration: str, endpoint: str) -> None:
    """Set up OpenTelemetry as the configuration says, exporting to `endpoint`, before mcp is used."""
    if configuration == "bare":
        return
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    trace.set_tracer_provider(tracer_provider)
    if configuration == "ours":
        from opentelemetry_instrumentation_mcp import McpInstrumentor

        reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"))
        meter_provider = MeterProvider(metric_readers=[reader])
        metrics.set_meter_provider(meter_provider)
        McpInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)


def serve(configuration: str, endpoint: str, port: int) -> None:
    import uvicorn

    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]
    from overhead import fastmcp_app

    from support.compat import streamable_http_app

    configure(configuration, endpoint)
    # a line per session opened and closed, and (mcp 1.x) a traceback per client that leaves: not the subject
    logging.getLogger("mcp").setLevel(logging.CRITICAL)
    app = streamable_http_app(fastmcp_app(), stateless=False, json_response=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


async def load(url: str, sessions: int, calls: int) -> float:
    """Seconds from the first session's start to the last one's end."""
    import anyio

    sys.path.insert(0, str(ROOT / "tests"))
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


def client(configuration: str, endpoint: str, url: str, sessions: int, calls: int) -> None:
    import anyio

    configure(configuration, endpoint)
    anyio.run(load, url, 5, 5)  # warm-up: imports, first connections
    print(anyio.run(load, url, sessions, calls))


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


def run(configuration: str, endpoint: str, sessions: int, calls: int) -> float:
    port = free_port()
    script = str(Path(__file__).resolve())
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    counts = [str(sessions), str(calls)]
    server = subprocess.Popen([sys.executable, script, "--serve", configuration, endpoint, str(port)], env=env)
    try:
        wait_for(port)
        result = subprocess.run(
            [sys.executable, script, "--client", configuration, endpoint, f"http://127.0.0.1:{port}/mcp", *counts],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
            env=env,
        )
    finally:
        server.terminate()
        server.wait(10)
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=5, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        configuration, endpoint, port = arguments.serve
        serve(configuration, endpoint, int(port))
        return
    if arguments.client:
        configuration, endpoint, url, sessions, calls = arguments.client
        client(configuration, endpoint, url, int(sessions), int(calls))
        return
    from opentelemetry_instrumentation_mcp.viewer import OtlpReceiver

    samples: dict[str, list[float]] = {name: [] for name in CONFIGURATIONS}
    received: dict[str, int] = dict.fromkeys(CONFIGURATIONS, 0)
    with OtlpReceiver(store=False) as receiver:
        for _ in range(arguments.rounds):
            for name in CONFIGURATIONS:

                def count(spans: list[Any], name: str = name) -> None:
                    received[name] += len(spans)

                receiver._on_spans = count  # the receiver's one listener, per configuration
                samples[name].append(run(name, receiver.endpoint, arguments.sessions, arguments.calls))
    bare = statistics.median(samples["bare"])
    print(
        f"mcp {metadata.version('mcp')}, {arguments.sessions} concurrent streamable HTTP sessions x "
        f"{arguments.calls} calls, {arguments.rounds} rounds, client wall time\n"
    )
    print(f"  {'configuration':<12} {'median s':>9} {'min':>7} {'max':>7} {'x bare':>7} {'spans received':>15}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(
            f"  {name:<12} {median:9.2f} {min(values):7.2f} {max(values):7.2f} {median / bare:7.2f} "
            f"{received[name]:>15}"
        )


if __name__ == "__main__":
    main()
