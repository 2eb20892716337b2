"""Enrich, don't duplicate: a `tools/call` sent inside an agent framework's span of that tool's execution makes no
CLIENT span of its own. The MCP attributes go on the framework's span (never over its owner's), `_meta` carries its
context, the server's span is its child, and the client's duration metric is recorded all the same.

The framework spans here are made as each framework makes them when the call starts (the real frameworks are in
`tests/stacks/`)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from support.apps import reference_app
from support.sessions import connected
from support.spans import child_of, one, ours, points_of

pytestmark = pytest.mark.anyio

TOOL_SPANS = {
    # google-adk: its name only, no attribute until the tool returns
    "google-adk": ("execute_tool add", {}),
    # openai-agents' contrib GenAI instrumentation: the operation, not yet the tool; the LLM provider's address
    "openai-agents": (
        "execute_tool add",
        {"gen_ai.operation.name": "execute_tool", "server.address": "api.openai.com"},
    ),
    # pydantic-ai: the operation and the tool
    "pydantic-ai": ("execute_tool add", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "add"}),
    # Traceloop's openai-agents instrumentation: a name of its own, both attributes
    "traceloop": ("add.tool", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "add"}),
}


async def call_add_inside(name: str, attributes: dict[str, Any]) -> None:
    async with connected("memory", reference_app()) as session:
        with trace.get_tracer("framework").start_as_current_span(name, attributes=attributes):
            await session.call_tool("add", {"a": 1, "b": 2})


def mcp_clients(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in ours(exporter) if span.kind is SpanKind.CLIENT and span.name == "tools/call add"]


@pytest.mark.parametrize("framework", TOOL_SPANS)
async def test_the_frameworks_tool_span_is_the_client_span(
    metrics: InMemoryMetricReader, exporter: InMemorySpanExporter, framework: str
) -> None:
    name, attributes = TOOL_SPANS[framework]
    await call_add_inside(name, attributes)
    assert mcp_clients(exporter) == []
    spans = exporter.get_finished_spans()
    tool = one(spans, name, SpanKind.INTERNAL)
    server = one(ours(exporter), "tools/call add", SpanKind.SERVER)
    assert child_of(server, tool)
    enriched, served = dict(tool.attributes or {}), dict(server.attributes or {})
    for key in ("mcp.method.name", "jsonrpc.request.id", "gen_ai.tool.name", "mcp.protocol.version"):
        assert enriched[key] == served[key], key
    assert {key: enriched[key] for key in attributes} == attributes  # the owner's, as it set them
    assert enriched.get("server.address") == attributes.get("server.address")  # never ours there
    assert tool.status.status_code is trace.StatusCode.UNSET
    data = metrics.get_metrics_data()
    [point] = [
        point
        for point in points_of(data, "mcp.client.operation.duration")
        if point.attributes.get("mcp.method.name") == "tools/call"
    ]
    assert point.count == 1
    assert [exemplar.span_id for exemplar in point.exemplars] == [tool.context.span_id]


async def test_the_owners_attributes_are_never_overwritten(instrumented: InMemorySpanExporter) -> None:
    owned = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "jsonrpc.request.id": "the framework's",
        "network.transport": "its own",
    }
    await call_add_inside("execute_tool add", owned)
    tool = one(instrumented.get_finished_spans(), "execute_tool add", SpanKind.INTERNAL)
    attributes = dict(tool.attributes or {})
    assert {key: attributes[key] for key in owned} == owned
    assert attributes["mcp.method.name"] == "tools/call"


@pytest.mark.parametrize(
    ("name", "attributes"),
    [
        ("add", {"openinference.span.kind": "TOOL", "tool.name": "add"}),  # OpenInference: no gen_ai.*
        ("execute_tool subtract", {}),  # another tool's
        ("execute_tool", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "subtract"}),
        ("agent run", {"gen_ai.operation.name": "invoke_agent"}),
    ],
    ids=["openinference", "another tool by name", "another tool by attribute", "an agent's span"],
)
async def test_other_spans_keep_a_client_span_of_ours_beneath_them(
    instrumented: InMemorySpanExporter, name: str, attributes: dict[str, Any]
) -> None:
    await call_add_inside(name, attributes)
    [client] = mcp_clients(instrumented)
    assert child_of(client, one(instrumented.get_finished_spans(), name, SpanKind.INTERNAL))
    assert child_of(one(ours(instrumented), "tools/call add", SpanKind.SERVER), client)


@pytest.mark.parametrize("how", ["argument", "environment"])
async def test_separate_client_spans_when_told(instrument: Any, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    if how == "argument":
        exporter = instrument(enrich_tool_spans=False)
    else:
        monkeypatch.setenv("OTEL_PYTHON_MCP_ENRICH_TOOL_SPANS", "false")
        exporter = instrument()
    await call_add_inside("execute_tool add", {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "add"})
    [client] = mcp_clients(exporter)
    tool = one(exporter.get_finished_spans(), "execute_tool add", SpanKind.INTERNAL)
    assert child_of(client, tool)
    assert "mcp.method.name" not in (tool.attributes or {})
