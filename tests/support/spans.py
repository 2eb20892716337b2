"""Trace contexts as peers send them, and the spans and metric points read back: from the in-memory exporter, or
received over OTLP from another process."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from opentelemetry_instrumentation_mcp.viewer import ReceivedSpan

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
"""A client's context, as a peer sends it in `_meta` or an HTTP header."""

BAD_METAS: list[Any] = [
    None,
    [],
    5,
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    {"traceparent": 5},
    {"traceparent": None},
    {"traceparent": ["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]},
    {"traceparent": {"nested": True}},
    {"traceparent": "x" * 10_000, "tracestate": "y" * 10_000, "baggage": "z" * 10_000},
    {"Traceparent": TRACEPARENT, "TRACEPARENT": TRACEPARENT},
    {"traceparent": TRACEPARENT.upper()},
    {"traceparent": "00-00000000000000000000000000000000-0000000000000000-01"},
    {"traceparent": "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    {"progressToken": {"odd": [1, 2]}, "\u0000": "\ud7ff", "traceparent": "00-" + "é" * 60},
]
"""`_meta` values that carry no usable trace context."""
USABLE_WITH_BAD_NEIGHBOURS: list[Any] = [
    {"traceparent": TRACEPARENT, "tracestate": 7, "baggage": ["k=v"]},
    {"traceparent": TRACEPARENT, "baggage": "not a baggage,,,=;;"},
    {"traceparent": TRACEPARENT, "tracestate": "=,,=" * 100},
]
"""A valid `traceparent` beside malformed companions: the parent is kept, the rest ignored."""


class Parent:
    """A client-side span context of its own, as `traceparent` and as the ids a child span must show."""

    def __init__(self, sampled: bool = True) -> None:
        self.trace_id = secrets.token_hex(16)
        self.span_id = secrets.token_hex(8)
        self.traceparent = f"00-{self.trace_id}-{self.span_id}-{'01' if sampled else '00'}"

    def meta(self, **extra: Any) -> dict[str, Any]:
        return {"traceparent": self.traceparent, **extra}


def ids(parent: Parent) -> tuple[str, str]:
    return parent.trace_id, parent.span_id


def ours(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """The finished spans this package emitted, in end order."""
    return [
        span
        for span in exporter.get_finished_spans()
        if span.instrumentation_scope is not None
        and span.instrumentation_scope.name == "opentelemetry_instrumentation_mcp"
    ]


def one(spans: Any, name: str, kind: SpanKind) -> ReadableSpan:
    """The one span of that name and kind."""
    [span] = [span for span in spans if span.name == name and span.kind is kind]
    return span


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def child_of(child: ReadableSpan, parent: ReadableSpan) -> bool:
    """Whether `child`'s parent is `parent`."""
    return child.parent is not None and (child.parent.trace_id, child.parent.span_id) == (
        parent.context.trace_id,
        parent.context.span_id,
    )


def parent_of(span: ReadableSpan) -> tuple[str, str] | None:
    """(trace id, parent span id) in hex, or None for a root."""
    if span.parent is None:
        return None
    return format(span.context.trace_id, "032x"), format(span.parent.span_id, "016x")


def ids_of(span: ReadableSpan) -> tuple[str, str]:
    """(trace id, span id) in hex."""
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


def links(span: ReadableSpan) -> list[tuple[str, str]]:
    return [(format(link.context.trace_id, "032x"), format(link.context.span_id, "016x")) for link in span.links]


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    """The data points of one metric, from everything recorded so far (a collection: exemplars start anew)."""
    return points_of(reader.get_metrics_data(), name)


def points_of(data: MetricsData | None, name: str) -> list[Any]:
    """The data points of one metric in one collection."""
    if data is None:
        return []
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


# --- the MCP spans of a stack: ours, the SDK's or a framework's, read from either source ------------------------

OURS = "opentelemetry_instrumentation_mcp"


@dataclass(frozen=True)
class Seen:
    name: str
    kind: SpanKind
    scope: str
    span_id: str
    parent_id: str | None
    attributes: dict[str, Any]


def seen(spans: Iterable[ReadableSpan | ReceivedSpan]) -> list[Seen]:
    found = []
    for span in spans:
        if isinstance(span, ReceivedSpan):
            found.append(
                Seen(span.name, span.kind, span.scope_name, span.span_id, span.parent_span_id, dict(span.attributes))
            )
            continue
        scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
        parent = format(span.parent.span_id, "016x") if span.parent else None
        span_id = format(span.context.span_id, "016x")  # type: ignore[union-attr]
        found.append(Seen(span.name, span.kind, scope, span_id, parent, dict(span.attributes or {})))
    return found


def mcp_spans(spans: Iterable[Seen], method: str, kind: SpanKind, target: str | None = None) -> list[Seen]:
    """The MCP spans of one operation on one side, by anyone (us, the SDK, a framework)."""
    found = []
    for span in spans:
        if span.kind is not kind or span.attributes.get("mcp.method.name") != method:
            continue
        if target is None or target in (
            span.attributes.get("gen_ai.tool.name"),
            span.attributes.get("gen_ai.prompt.name"),
        ):
            found.append(span)
    return found


def one_pair(spans: list[Seen], method: str, target: str | None = None) -> tuple[Seen, Seen]:
    """The one CLIENT and one SERVER MCP span of an operation, both ours, the SERVER span the CLIENT span's child."""
    clients = mcp_spans(spans, method, SpanKind.CLIENT, target)
    servers = mcp_spans(spans, method, SpanKind.SERVER, target)
    assert (len(clients), len(servers)) == (1, 1), (method, [(s.name, s.scope) for s in clients + servers])
    [client], [server] = clients, servers
    assert (client.scope, server.scope) == (OURS, OURS)
    assert server.parent_id == client.span_id, method
    return client, server
