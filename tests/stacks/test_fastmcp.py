"""FastMCP (2.x and 3.x on mcp 1.x, 4.x on mcp 2.x), client and server, in memory, over streamable HTTP and over
stdio with the server under `opentelemetry-instrument`: one CLIENT and one SERVER span per operation, ours, the
SERVER span the child of the CLIENT span, under the caller's span; the answers are those of an untraced run."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

fastmcp = pytest.importorskip("fastmcp")

from fastmcp import Client  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from opentelemetry_instrumentation_mcp import McpInstrumentor  # noqa: E402
from opentelemetry_instrumentation_mcp.viewer import OtlpReceiver  # noqa: E402
from support.fastmcp_server import stack_server  # noqa: E402
from support.peers import serving  # noqa: E402
from support.processes import instrument_command, server_env  # noqa: E402
from support.spans import one_pair, seen  # noqa: E402

pytestmark = pytest.mark.anyio
SERVER_SCRIPT = Path(stack_server.__code__.co_filename)
OPERATIONS = [("tools/list", None), ("tools/call", "add"), ("resources/read", None), ("prompts/get", "greet")]


async def converse(target: Any) -> list[Any]:
    """What an agent turn does: list, call, read, prompt; the answers as plain data."""
    async with Client(target) as client:
        with trace.get_tracer("agent").start_as_current_span("agent turn"):
            tools = await client.list_tools()
            added = await client.call_tool("add", {"a": 2, "b": 3})
            read = await client.read_resource("demo://readme")
            prompt = await client.get_prompt("greet", {"name": "Ada"})
    return [
        [tool.name for tool in tools],
        [block.model_dump() for block in added.content],
        [content.model_dump() for content in read],
        [message.model_dump() for message in prompt.messages],
    ]


@pytest.fixture
def http_url() -> Iterator[str]:
    with serving(stack_server().http_app(path="/mcp")) as url:
        yield f"{url}/mcp"


def stdio_target(receiver: OtlpReceiver) -> Any:
    """The server script in a process of its own, zero-code, with the SDK's default export schedule."""
    from fastmcp.client.transports import StdioTransport

    env = {**server_env(receiver.endpoint), "OTEL_METRICS_EXPORTER": "otlp"}
    del env["OTEL_BSP_SCHEDULE_DELAY"]
    command = instrument_command()
    return StdioTransport(command, [sys.executable, str(SERVER_SCRIPT)], env=env, keep_alive=False)


@pytest.mark.parametrize("transport", ["memory", "http"])
async def test_one_span_per_side_per_operation(
    exporter: InMemorySpanExporter,
    tracer_provider: TracerProvider,
    transport: str,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    target = stack_server() if transport == "memory" else request.getfixturevalue("http_url")
    untraced = await converse(target)
    exporter.clear()
    instrumentor = McpInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_mcp"):
            traced = await converse(stack_server() if transport == "memory" else target)
    finally:
        instrumentor.uninstrument()
    assert traced == untraced
    assert not [record for record in caplog.records if record.name.startswith("opentelemetry_instrumentation_mcp")]
    spans = seen(exporter.get_finished_spans())
    [turn] = [span for span in spans if span.name == "agent turn"]
    for method, target_name in OPERATIONS:
        client, _ = one_pair(spans, method, target_name)
        assert client.parent_id == turn.span_id


async def test_over_stdio_with_a_zero_code_server(instrumented: InMemorySpanExporter, receiver: OtlpReceiver) -> None:
    receiver.clear()
    await converse(stdio_target(receiver))
    ours = seen(instrumented.get_finished_spans())
    # the server's spans and metrics are exported when its stdin closes, not 5 s or 60 s later (nor lost when the
    # client stops it)
    receiver.wait_for_spans(lambda span: span.name == "prompts/get greet", timeout=4)
    receiver.wait_for_metrics(lambda metric: metric.name == "mcp.server.operation.duration", timeout=4)
    theirs = seen(receiver.spans)
    for method, target_name in OPERATIONS:
        one_pair(ours + theirs, method, target_name)


async def test_framework_spans_come_back_after_uninstrument(
    exporter: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    instrumentor = McpInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    instrumentor.uninstrument()
    await converse(stack_server())
    scopes = {span.instrumentation_scope.name for span in exporter.get_finished_spans() if span.instrumentation_scope}
    assert "opentelemetry_instrumentation_mcp" not in scopes
    if hasattr(fastmcp, "telemetry"):  # FastMCP 3 and 4 trace themselves
        assert "fastmcp" in scopes
