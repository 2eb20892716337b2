"""`python -m demo`: an agent calls an MCP tool whose handler calls a slow search API; the trace is printed.

Three parts, one trace: this process (the agent: an MCP client, instrumented programmatically), the MCP server
it spawns over stdio (instrumented with zero code by `opentelemetry-instrument`), and a slow HTTP search API
the server's tool calls. Both processes export OTLP/HTTP to `mcp-otel-viewer`'s receiver, embedded here: no
Docker, no backend. Note the `env=`: the SDK's stdio client passes the server only a few safe variables, so
`OTEL_*` must be handed over explicitly.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from demo.search_api import SearchApi
from opentelemetry_instrumentation_mcp import McpInstrumentor
from opentelemetry_instrumentation_mcp.viewer import OtlpReceiver, ReceivedSpan, render

ROOT = Path(__file__).resolve().parent.parent


def server_parameters(endpoint: str, search_api: str) -> StdioServerParameters:
    instrument = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    if instrument is None:
        sys.exit("opentelemetry-instrument is missing: pip install -r demo/requirements.txt")
    return StdioServerParameters(
        command=instrument,
        args=[sys.executable, "-m", "demo.server"],
        cwd=str(ROOT),
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "SEARCH_API_URL": search_api,
            "OTEL_SERVICE_NAME": "search-server",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        },
    )


def _is_tool_call(span: ReceivedSpan) -> bool:
    return span.name == "tools/call search" and span.kind is trace.SpanKind.SERVER


async def agent_turn(receiver: OtlpReceiver, search_api: SearchApi) -> str:
    """What an agent does for one user question: call the search tool, in a span of its own."""
    tracer = trace.get_tracer("demo.agent")
    parameters = server_parameters(receiver.endpoint, search_api.url)
    with tracer.start_as_current_span("agent turn"):
        async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool("search", {"query": "Distributed Tracing"})
            # stay connected until the server has exported: some SDK versions kill the server on exit
            await anyio.to_thread.run_sync(lambda: receiver.wait_for_spans(_is_tool_call, 15))
    return str(result.content[0].text)  # type: ignore[union-attr]


def main() -> None:
    with OtlpReceiver() as receiver, SearchApi(delay=0.3) as search_api:
        provider = TracerProvider(resource=Resource.create({"service.name": "agent"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")))
        trace.set_tracer_provider(provider)
        McpInstrumentor().instrument(tracer_provider=provider)
        answer = anyio.run(agent_turn, receiver, search_api)
        provider.shutdown()
        spans = receiver.wait_for_spans(lambda span: span.name == "agent turn")
        spans = receiver.spans
    print(f"tool answered: {answer}\n")
    print(render(span for span in spans if span.name not in ("tools/list",) or span.parent_span_id))


if __name__ == "__main__":
    main()
