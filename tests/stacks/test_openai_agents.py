"""openai-agents (its `MCPServerStreamableHttp`, on mcp 2.x) with a fake model, no LLM, under either GenAI
instrumentation of openai-agents: OpenTelemetry's contrib bridge (`opentelemetry-instrumentation-openai-agents-v2`,
span `execute_tool add`) or Traceloop's (`opentelemetry-instrumentation-openai-agents`, span `add.tool`). Both ship
the same module, so each has its own environment. The framework's span of the tool's execution is the call's CLIENT
span (enriched: no second one of ours), the server's SERVER span under it; with `enrich_tool_spans=False`, our CLIENT
span under the framework's, the SERVER span under ours."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import PackageNotFoundError, distribution
from typing import Any

import pytest

pytest.importorskip("agents")
pytest.importorskip("opentelemetry.instrumentation.openai_agents")

from agents import Agent, RunConfig, Runner, set_trace_processors
from agents.items import ModelResponse, ToolCallOutputItem
from agents.mcp import MCPServerStreamableHttp
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText
from opentelemetry.instrumentation.openai_agents import OpenAIAgentsInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from opentelemetry_instrumentation_mcp import McpInstrumentor
from support.apps import reference_app
from support.compat import streamable_http_app
from support.peers import serving
from support.spans import OURS, mcp_spans, one_pair, seen

pytestmark = pytest.mark.anyio


def _installed(name: str) -> bool:
    try:
        distribution(name)
    except PackageNotFoundError:
        return False
    return True


CONTRIB = _installed("opentelemetry-instrumentation-openai-agents-v2")
TOOL_SPAN = "execute_tool add" if CONTRIB else "add.tool"
"""The framework's span of the tool's execution, as each instrumentation names it."""


class CallsAdd(Model):
    """A model that asks for `add(a=2, b=3)`, then says what the tool answered."""

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> ModelResponse:
        answers = [item["output"] for item in input if isinstance(item, dict) and "output" in item]
        if not answers:
            output: Any = ResponseFunctionToolCall(
                id="fc_1", call_id="call_1", type="function_call", name="add", arguments='{"a": 2, "b": 3}'
            )
        else:
            text = ResponseOutputText(type="output_text", text=f"the tool said {answers[-1]}", annotations=[])
            output = ResponseOutputMessage(
                id="msg_1", type="message", role="assistant", status="completed", content=[text]
            )
        return ModelResponse(output=[output], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError


@pytest.fixture(scope="module", autouse=True)
def agents_instrumented(tracer_provider: TracerProvider) -> Iterator[None]:
    """The GenAI instrumentation of openai-agents, as the only processor of its traces (none leaves the machine)."""
    os.environ.pop("OPENAI_API_KEY", None)
    if CONTRIB:
        set_trace_processors([])  # the bridge adds itself beside openai-agents' own export to OpenAI: drop that
        instrumentor = OpenAIAgentsInstrumentor()
    else:
        instrumentor = OpenAIAgentsInstrumentor(replace_existing_processors=True)
    instrumentor.instrument(tracer_provider=tracer_provider)
    yield
    instrumentor.uninstrument()


@pytest.fixture
def mcp_url() -> Iterator[str]:
    with serving(streamable_http_app(reference_app(), stateless=False, json_response=True)) as url:
        yield f"{url}/mcp"


async def run_agent(url: str) -> tuple[list[Any], Any]:
    """One user message; the tool's results as the agent got them, and its final output."""
    async with MCPServerStreamableHttp({"url": url}, name="calculator", client_session_timeout_seconds=30) as server:
        agent = Agent(name="calculator", instructions="Use the add tool.", model=CallsAdd(), mcp_servers=[server])
        result = await Runner.run(agent, "add two numbers", run_config=RunConfig(workflow_name="stack"))
    return [item.output for item in result.new_items if isinstance(item, ToolCallOutputItem)], result.final_output


@pytest.mark.parametrize("enrich", [True, False], ids=["enriched", "separate"])
async def test_an_agents_tool_call(
    exporter: InMemorySpanExporter, tracer_provider: TracerProvider, mcp_url: str, enrich: bool
) -> None:
    untraced = await run_agent(mcp_url)
    assert untraced == ([{"type": "text", "text": "5"}], "the tool said [{'type': 'input_text', 'text': '5'}]")
    exporter.clear()
    instrumentor = McpInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, enrich_tool_spans=enrich)
    try:
        assert await run_agent(mcp_url) == untraced
    finally:
        instrumentor.uninstrument()
    spans = seen(exporter.get_finished_spans())
    [execute] = [span for span in spans if span.name == TOOL_SPAN]
    assert execute.scope == "opentelemetry.instrumentation.openai_agents"
    assert execute.attributes["gen_ai.operation.name"] == "execute_tool"
    [server] = mcp_spans(spans, "tools/call", SpanKind.SERVER, "add")
    if enrich:
        # the framework's own span of the tool's execution is the call's CLIENT span: no second one of ours
        assert mcp_spans(spans, "tools/call", SpanKind.CLIENT, "add") == []
        assert execute.attributes["mcp.method.name"] == "tools/call"
        assert execute.attributes["gen_ai.tool.name"] == "add"
        assert (server.scope, server.parent_id) == (OURS, execute.span_id)
        assert server.attributes["jsonrpc.request.id"] == execute.attributes["jsonrpc.request.id"]
        # what the span's owner set stays: the contrib bridge's LLM provider address is not the MCP server's
        if CONTRIB:
            assert (execute.attributes["server.address"], execute.attributes["server.port"]) == ("api.openai.com", 443)
        else:
            assert "server.address" not in execute.attributes
    else:
        client, _ = one_pair(spans, "tools/call", "add")
        assert client.parent_id == execute.span_id
        assert "mcp.method.name" not in execute.attributes
    assert len(mcp_spans(spans, "tools/list", SpanKind.CLIENT)) >= 1
