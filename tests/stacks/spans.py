"""What the stack tests assert of a trace: every operation's MCP spans, from whichever library made them, whether
read back from the in-memory exporter or received over OTLP from a server process."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from opentelemetry_instrumentation_mcp.viewer import ReceivedSpan

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
