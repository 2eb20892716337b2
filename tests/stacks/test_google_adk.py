"""google-adk (its `McpToolset` over streamable HTTP, on mcp 2.x) with a fake model, no LLM: ADK's own span of the
tool's execution, `execute_tool add`, is the call's CLIENT span (enriched: no second one of ours), the server's
SERVER span under it; with `enrich_tool_spans=False`, our CLIENT span under ADK's, the SERVER span under ours."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from typing import Any

import pytest

pytest.importorskip("google.adk")

from google.adk.agents import LlmAgent
from google.adk.models import BaseLlm, LlmRequest, LlmResponse
from google.adk.runners import InMemoryRunner
from google.adk.tools.mcp_tool import McpToolset, StreamableHTTPConnectionParams
from google.genai import types
from mcp.server.mcpserver import MCPServer  # google-adk 2.13 resolves mcp 2.x
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from opentelemetry_instrumentation_mcp import McpInstrumentor
from support.peers import serving
from support.spans import OURS, mcp_spans, one_pair, seen

pytestmark = pytest.mark.anyio


class CallsAdd(BaseLlm):
    """A model that asks for `add(a=2, b=3)`, then says what the tool answered."""

    model: str = "calls-add"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        answers = [
            part.function_response.response
            for content in llm_request.contents
            for part in content.parts or []
            if part.function_response is not None
        ]
        if not answers:
            part = types.Part(function_call=types.FunctionCall(name="add", args={"a": 2, "b": 3}))
        else:
            part = types.Part(text=f"the tool said {answers[-1]}")
        yield LlmResponse(content=types.Content(role="model", parts=[part]))


def adder() -> Any:
    server = MCPServer("adder")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    return server


@pytest.fixture
def mcp_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # ADK probes an HTTP MCP server for Google mTLS with google.auth.default(), which pings the GCE metadata server
    monkeypatch.setenv("GOOGLE_API_USE_CLIENT_CERTIFICATE", "false")
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    with serving(adder().streamable_http_app()) as url:
        yield f"{url}/mcp"


async def run_agent(url: str) -> list[Any]:
    """One user message; the tool's results as the agent got them, and its final text."""
    agent = LlmAgent(
        name="calculator",
        model=CallsAdd(),
        tools=[McpToolset(connection_params=StreamableHTTPConnectionParams(url=url))],
    )
    runner = InMemoryRunner(agent=agent, app_name="stack")
    session = await runner.session_service.create_session(app_name="stack", user_id="user")
    message = types.Content(role="user", parts=[types.Part(text="add two numbers")])
    seen_parts: list[Any] = []
    try:
        async for event in runner.run_async(user_id="user", session_id=session.id, new_message=message):
            for part in (event.content.parts if event.content else None) or []:
                if part.function_response is not None:
                    seen_parts.append(part.function_response.response)
                elif part.text:
                    seen_parts.append(part.text)
    finally:
        await runner.close()
    return seen_parts


@pytest.mark.parametrize("enrich", [True, False], ids=["enriched", "separate"])
async def test_an_agents_tool_call(
    exporter: InMemorySpanExporter, tracer_provider: TracerProvider, mcp_url: str, enrich: bool
) -> None:
    untraced = await run_agent(mcp_url)
    assert untraced[0]["structuredContent"] == {"result": 5}
    exporter.clear()
    records: list[tuple[str | None, Any]] = []

    def hook(span: Any, method: str, params: Any) -> None:
        if method == "tools/call" and span.kind is not SpanKind.SERVER:
            current = trace.get_current_span()
            records.append((getattr(current, "name", None), dict(getattr(current, "attributes", {}) or {})))

    instrumentor = McpInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, enrich_tool_spans=enrich, request_hook=hook)
    try:
        assert await run_agent(mcp_url) == untraced
    finally:
        instrumentor.uninstrument()
    spans = seen(exporter.get_finished_spans())
    [execute] = [span for span in spans if span.name == "execute_tool add"]
    assert execute.scope == "gcp.vertex.agent"
    assert execute.attributes["gen_ai.tool.name"] == "add"
    [server] = mcp_spans(spans, "tools/call", SpanKind.SERVER, "add")
    if enrich:
        # ADK's own span of the tool's execution is the call's CLIENT span: no second one of ours
        assert mcp_spans(spans, "tools/call", SpanKind.CLIENT, "add") == []
        assert execute.attributes["mcp.method.name"] == "tools/call"
        assert (server.scope, server.parent_id) == (OURS, execute.span_id)
        assert server.attributes["jsonrpc.request.id"] == execute.attributes["jsonrpc.request.id"]
    else:
        client, _ = one_pair(spans, "tools/call", "add")
        assert client.parent_id == execute.span_id
        assert "mcp.method.name" not in execute.attributes
        # as our CLIENT span starts, ADK's span is current and has no attribute yet (it sets them as the tool returns)
        assert ("execute_tool add", {}) in records
    one_pair(spans, "tools/list")
