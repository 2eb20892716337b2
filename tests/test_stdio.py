"""Zero code over stdio: the reference server runs under `opentelemetry-instrument`, exporting OTLP/HTTP."""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind

from opentelemetry_instrumentation_mcp._conventions import BUCKETS
from opentelemetry_instrumentation_mcp.viewer import OtlpReceiver, ReceivedSpan
from support.compat import HANDSHAKE_VERSION
from support.peers import StdioPeer
from support.processes import reference_server, server_env
from support.spans import BAD_METAS, PARENT_ID, TRACE_ID, TRACEPARENT


def instrumented_server(receiver: OtlpReceiver) -> StdioPeer:
    return StdioPeer(reference_server("stdio", instrumented=True), server_env(receiver.endpoint))


def by_name(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    [span] = [span for span in spans if span.name == name]
    return span


def test_zero_code_stdio_server(receiver: OtlpReceiver) -> None:
    receiver.clear()
    peer = instrumented_server(receiver)
    peer.initialize()
    answer = peer.request(
        "tools/call", {"name": "add", "arguments": {"a": 2, "b": 2}, "_meta": {"traceparent": TRACEPARENT}}
    )
    assert answer["result"]["content"][0]["text"] == "4"
    assert peer.request("tools/call", {"name": "explode", "arguments": {}})["result"]["isError"] is True
    peer.request("ping")
    peer.close()

    spans = receiver.wait_for_spans(6)
    assert sorted(span.name for span in spans) == sorted(
        ["initialize", "notifications/initialized", "tools/call add", "add.compute", "tools/call explode", "ping"]
    )
    mcp_spans = [span for span in spans if span.scope_name == "opentelemetry_instrumentation_mcp"]
    assert len(mcp_spans) == 5
    for span in mcp_spans:
        assert span.kind is SpanKind.SERVER
        assert span.attributes["network.transport"] == "pipe"
        assert span.attributes["mcp.protocol.version"] == HANDSHAKE_VERSION
        assert span.resource["service.name"] == "reference-server"
    tool = by_name(spans, "tools/call add")
    assert (tool.trace_id, tool.parent_span_id) == (TRACE_ID, PARENT_ID)
    assert tool.attributes == {
        "mcp.method.name": "tools/call",
        "jsonrpc.request.id": "2",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "mcp.protocol.version": HANDSHAKE_VERSION,
        "network.transport": "pipe",
    }
    assert tool.status_code == "UNSET"
    compute = by_name(spans, "add.compute")
    assert (compute.trace_id, compute.parent_span_id) == (TRACE_ID, tool.span_id)
    explode = by_name(spans, "tools/call explode")
    assert (explode.attributes["error.type"], explode.status_code) == ("tool_error", "ERROR")
    assert explode.parent_span_id is None


def converse(peer: StdioPeer) -> list[dict[str, Any]]:
    answers = [peer.initialize()]
    for meta in BAD_METAS:
        answers.append(peer.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}, "_meta": meta}))
        peer.notify("notifications/roots/list_changed", {"_meta": meta})
        answers.append(peer.request("ping", {"_meta": meta}))
    peer.close()
    return answers


def test_bad_meta_over_stdio_gets_the_same_answers(receiver: OtlpReceiver) -> None:
    plain = converse(StdioPeer(reference_server("stdio", instrumented=False), server_env(None)))
    assert converse(instrumented_server(receiver)) == plain


def test_stdio_session_context_from_initialize(receiver: OtlpReceiver) -> None:
    receiver.clear()
    session_parent = "00-11111111111111111111111111111111-2222222222222222-01"
    peer = instrumented_server(receiver)
    peer.request(
        "initialize",
        {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
            "_meta": {"traceparent": session_parent},
        },
    )
    peer.notify("notifications/initialized")
    for _ in range(3):
        peer.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 1}})
    peer.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 1}, "_meta": {"traceparent": TRACEPARENT}})
    peer.close()
    spans = receiver.wait_for_spans(lambda span: span.scope_name == "opentelemetry_instrumentation_mcp")
    parents = [(span.name, span.trace_id, span.parent_span_id) for span in spans if span.kind is SpanKind.SERVER]
    session = ("11111111111111111111111111111111", "2222222222222222")
    assert parents == [
        ("initialize", *session),
        ("notifications/initialized", *session),
        ("tools/call add", *session),
        ("tools/call add", *session),
        ("tools/call add", *session),
        ("tools/call add", TRACE_ID, PARENT_ID),
    ]


def test_metrics_over_otlp(receiver: OtlpReceiver) -> None:
    receiver.clear()
    env = server_env(receiver.endpoint)
    env.update(OTEL_METRICS_EXPORTER="otlp", OTEL_METRIC_EXPORT_INTERVAL="200")
    peer = StdioPeer(reference_server("stdio", instrumented=True), env)
    peer.initialize()
    peer.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 1}})
    peer.close()  # the session ends with stdin; the SDK exports what is left as the process exits

    def named(name: str) -> list[Any]:
        """The points of the last export of a metric: each periodic export repeats the cumulative totals."""
        return list(receiver.wait_for_metrics(lambda metric: metric.name == name)[-1].data_points)

    calls = [
        point for point in named("mcp.server.operation.duration") if point.attributes.get("gen_ai.tool.name") == "add"
    ]
    assert [point.attributes for point in calls] == [
        {
            "mcp.method.name": "tools/call",
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "add",
            "mcp.protocol.version": HANDSHAKE_VERSION,
            "network.transport": "pipe",
        }
    ]
    assert calls[0].value.count == 1
    assert calls[0].value.explicit_bounds == BUCKETS
    [session] = named("mcp.server.session.duration")
    assert session.attributes == {"mcp.protocol.version": HANDSHAKE_VERSION, "network.transport": "pipe"}
