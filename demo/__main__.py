"""`python -m demo`: an MCP client calls a tool of a server it spawns over stdio; the trace is printed.

The server runs under `opentelemetry-instrument` (zero code) and exports OTLP/HTTP to a receiver embedded in
this process: no Docker, no backend to install. Note the `env=`: the SDK's stdio client passes the server
only a few safe variables, so `OTEL_*` must be handed over explicitly.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from demo.receiver import OtlpReceiver, ReceivedSpan
from demo.tree import render

ROOT = Path(__file__).resolve().parent.parent


def server_parameters(endpoint: str) -> StdioServerParameters:
    instrument = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    if instrument is None:
        sys.exit("opentelemetry-instrument is missing: pip install opentelemetry-distro")
    return StdioServerParameters(
        command=instrument,
        args=[sys.executable, "-m", "demo.server"],
        cwd=str(ROOT),
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "OTEL_SERVICE_NAME": "search-server",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        },
    )


async def converse(receiver: OtlpReceiver) -> str:
    parameters = server_parameters(receiver.endpoint)
    async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        result = await session.call_tool("search", {"query": "Distributed Tracing"})
        # stay connected until the server has exported the call: some SDK versions kill the server on exit
        await anyio.to_thread.run_sync(lambda: receiver.wait_for_spans(_is_tool_call, 15))
        return str(result.content[0].text)  # type: ignore[union-attr]


def _is_tool_call(span: ReceivedSpan) -> bool:
    return span.name == "tools/call search"


def main() -> None:
    with OtlpReceiver() as receiver:
        answer = anyio.run(converse, receiver)
        spans = receiver.spans
    print(f"tool answered: {answer}\n")
    print(render(spans))


if __name__ == "__main__":
    main()
