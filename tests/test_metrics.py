"""The four MCP histograms: units, buckets, exactly the allowed attributes, sessions however they end."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from opentelemetry_instrumentation_mcp._conventions import BUCKETS, create_durations
from opentelemetry_instrumentation_mcp._operation import create_sides
from support.apps import reference_app
from support.compat import read_timeout, streamable_http_app
from support.peers import StreamableHttpPeer, serving
from support.sessions import connected, stdio_parameters
from support.spans import one, ours, points, points_of

pytestmark = pytest.mark.anyio

NEVER = {"jsonrpc.request.id", "mcp.session.id", "mcp.resource.uri", "client.address", "client.port"}


def _by_items(attributes: dict[str, Any]) -> list[tuple[str, str]]:
    """A sort key of a point's attributes that does not depend on their order."""
    return sorted((key, str(value)) for key, value in attributes.items())


def by_method(reader: InMemoryMetricReader, name: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for point in points(reader, name):
        attributes = dict(point.attributes)
        assert not NEVER & attributes.keys(), attributes
        assert list(attributes) == sorted(attributes)  # every point's attributes in one order
        assert tuple(point.explicit_bounds) == BUCKETS
        found.setdefault(str(attributes.get("mcp.method.name")), []).append(attributes)
    return found


async def test_operation_durations_on_both_sides(metrics: InMemoryMetricReader) -> None:
    async with connected("memory", reference_app()) as session:
        await session.call_tool("add", {"a": 1, "b": 2})
        await session.call_tool("explode", {})
        await session.get_prompt("greet", {"name": "Ada"})
        await session.read_resource("demo://readme")
    server = by_method(metrics, "mcp.server.operation.duration")
    client = by_method(metrics, "mcp.client.operation.duration")
    version = server["initialize"][0]["mcp.protocol.version"]
    for side in (server, client):
        assert sorted(side["tools/call"], key=_by_items) == sorted(
            [
                {
                    "mcp.method.name": "tools/call",
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "add",
                    "mcp.protocol.version": version,
                },
                {
                    "mcp.method.name": "tools/call",
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "explode",
                    "mcp.protocol.version": version,
                    "error.type": "tool_error",
                },
            ],
            key=_by_items,
        )
        assert side["prompts/get"] == [
            {"mcp.method.name": "prompts/get", "gen_ai.prompt.name": "greet", "mcp.protocol.version": version}
        ]
        assert side["resources/read"] == [{"mcp.method.name": "resources/read", "mcp.protocol.version": version}]
    [point] = [
        p for p in points(metrics, "mcp.server.operation.duration") if p.attributes.get("gen_ai.tool.name") == "add"
    ]
    assert point.count == 1
    assert 0 < point.sum < 5


async def test_an_exemplar_leads_to_the_span_it_measured(
    metrics: InMemoryMetricReader, exporter: InMemorySpanExporter
) -> None:
    """Each duration is recorded in its operation's context: the SDK's default (trace-based) exemplar filter keeps
    the MCP span measured, on either side, not the caller's span."""
    async with connected("memory", reference_app()) as session:
        with trace.get_tracer("agent").start_as_current_span("agent turn"):
            await session.call_tool("add", {"a": 1, "b": 2})
    spans = ours(exporter)
    data = metrics.get_metrics_data()  # one collection: each starts its exemplars anew
    for side, kind in (("server", SpanKind.SERVER), ("client", SpanKind.CLIENT)):
        [point] = [
            point
            for point in points_of(data, f"mcp.{side}.operation.duration")
            if point.attributes.get("gen_ai.tool.name") == "add"
        ]
        span = one(spans, "tools/call add", kind)
        assert [(exemplar.trace_id, exemplar.span_id) for exemplar in point.exemplars] == [
            (span.context.trace_id, span.context.span_id)
        ], side


async def test_session_durations_when_sessions_end(metrics: InMemoryMetricReader) -> None:
    async with connected("memory", reference_app()) as session:
        await session.send_ping()
    [server] = points(metrics, "mcp.server.session.duration")
    [client] = points(metrics, "mcp.client.session.duration")
    version = dict(server.attributes)["mcp.protocol.version"]
    assert dict(server.attributes) == dict(client.attributes) == {"mcp.protocol.version": version}
    assert server.count == client.count == 1


async def test_a_broken_session_has_an_error_type(metrics: InMemoryMetricReader) -> None:
    with pytest.raises(Exception):  # noqa: PT011, B017 - whatever the SDK raises for a dead server
        async with connected("stdio", stdio_parameters(instrumented=False), read_timeout_seconds=read_timeout(10)) as s:
            await s.call_tool("crash", {})
    [client] = points(metrics, "mcp.client.session.duration")
    attributes = dict(client.attributes)
    assert attributes["network.transport"] == "pipe"
    assert attributes["error.type"]


def test_http_sessions(metrics: InMemoryMetricReader) -> None:
    for stateless in (False, True):
        with serving(streamable_http_app(reference_app(), stateless=stateless, json_response=True)) as url:
            peer = StreamableHttpPeer(url)
            peer.initialize()
            peer.request("ping")
            peer.close()  # DELETE ends a stateful session
    [session] = points(metrics, "mcp.server.session.duration")  # the stateless "sessions" are none
    attributes = dict(session.attributes)
    assert attributes["network.transport"] == "tcp"
    assert attributes["network.protocol.name"] == "http"
    assert "mcp.session.id" not in attributes


async def test_spans_and_metrics_name_the_conventions_they_follow(
    metrics: InMemoryMetricReader, exporter: InMemorySpanExporter
) -> None:
    """The schema URL is pinned: an unrelated upgrade of the semconv package does not change it."""
    async with connected("memory", reference_app()) as session:
        await session.send_ping()
    schema = "https://opentelemetry.io/schemas/1.40.0"
    assert {span.instrumentation_scope.schema_url for span in ours(exporter)} == {schema}  # type: ignore[union-attr]
    data = metrics.get_metrics_data()
    assert data is not None
    scopes = [scope.scope for resource in data.resource_metrics for scope in resource.scope_metrics]
    assert {scope.schema_url for scope in scopes if scope.name == "opentelemetry_instrumentation_mcp"} == {schema}


def test_the_orders_of_duration_keys_remembered_stay_few() -> None:
    """The sorted duration keys are remembered per order of an operation's attribute keys, which are this package's
    own; were they not, the memory would start over rather than grow."""
    meter = MeterProvider().get_meter("test")
    side = create_sides(create_durations(meter), dict, lambda error: None, lambda error: None).server
    for number in range(1000):
        assert side.duration_keys_of(("mcp.method.name", f"key {number}", "error.type")) == (
            "error.type",
            "mcp.method.name",
        )
    assert 0 < len(side.duration_key_orders) <= 256
