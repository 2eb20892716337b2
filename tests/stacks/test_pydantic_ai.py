"""pydantic-ai (its MCP client is FastMCP 4) with its `TestModel`, no LLM: the agent's own tool span carries the
`tools/call`'s MCP attributes (no CLIENT span of ours beside it), and the server's SERVER span is its child."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("pydantic_ai")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic_ai import Agent
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.models.test import TestModel

from opentelemetry_instrumentation_mcp import McpInstrumentor
from support.fastmcp_server import stack_server
from support.spans import OURS, mcp_spans, one_pair, seen

pytestmark = pytest.mark.anyio


@pytest.fixture
def agent_spans() -> Iterator[None]:
    Agent.instrument_all(True)
    yield
    Agent.instrument_all(False)


async def run_agent() -> str:
    agent = Agent(TestModel(call_tools=["add"]), toolsets=[MCPToolset(stack_server())])
    result = await agent.run("add two numbers")
    return str(result.output)


async def test_an_agents_tool_call(
    exporter: InMemorySpanExporter, tracer_provider: TracerProvider, agent_spans: None
) -> None:
    untraced = await run_agent()
    exporter.clear()
    instrumentor = McpInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        assert await run_agent() == untraced
    finally:
        instrumentor.uninstrument()
    spans = seen(exporter.get_finished_spans())
    # pydantic-ai's own span of the tool's execution is the call's CLIENT span: no second one of ours
    assert mcp_spans(spans, "tools/call", SpanKind.CLIENT, "add") == []
    [execute] = [span for span in spans if span.name == "execute_tool add"]
    assert (execute.attributes["mcp.method.name"], execute.attributes["gen_ai.tool.name"]) == ("tools/call", "add")
    [server] = mcp_spans(spans, "tools/call", SpanKind.SERVER, "add")
    assert (server.scope, server.parent_id) == (OURS, execute.span_id)
    assert server.attributes["jsonrpc.request.id"] == execute.attributes["jsonrpc.request.id"]
    one_pair(spans, "tools/list")
