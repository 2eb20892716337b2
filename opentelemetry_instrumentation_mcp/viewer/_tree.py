"""Received spans as trace trees, with durations on a timeline, the way a tracing UI lays them out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from opentelemetry_instrumentation_mcp.viewer._receiver import AttributeValue, ReceivedSpan

_SHOWN_ATTRIBUTES = ("mcp.method.name", "gen_ai.tool.name", "jsonrpc.request.id", "network.transport", "error.type")


def _duration_ms(span: ReceivedSpan) -> float:
    return (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6


_WIDTH = 30


def _bar(span: ReceivedSpan, start: int, total: int) -> str:
    """The span on the trace's timeline, as a tracing UI's waterfall draws it."""
    offset = round(_WIDTH * (span.start_time_unix_nano - start) / total) if total else 0
    length = max(1, round(_WIDTH * (span.end_time_unix_nano - span.start_time_unix_nano) / total)) if total else 1
    return (" " * min(offset, _WIDTH - 1) + "█" * length)[:_WIDTH].ljust(_WIDTH)


def _text(value: AttributeValue) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _details(span: ReceivedSpan) -> str:
    url = span.attributes.get("url.full") or span.attributes.get("http.url")
    if url is not None:
        return _text(url)
    return " ".join(f"{key}={_text(span.attributes[key])}" for key in _SHOWN_ATTRIBUTES if key in span.attributes)


def render(spans: Iterable[ReceivedSpan]) -> str:
    """Every trace in `spans`, one tree each, children in start order."""
    spans = sorted(spans, key=lambda span: span.start_time_unix_nano)
    ids = {span.span_id for span in spans}
    children: dict[str | None, list[ReceivedSpan]] = defaultdict(list)
    for span in spans:
        children[span.parent_span_id if span.parent_span_id in ids else None].append(span)
    rows: list[tuple[str, ...]] = []
    leaves = [span for span in spans if not children[span.span_id]]
    slowest = max(leaves, key=_duration_ms, default=None)
    start = total = 0

    def walk(span: ReceivedSpan, prefix: str, last: bool) -> None:
        duration = f"{_duration_ms(span):8.1f} ms"
        marker = "  ◀ the slow part" if span is slowest else ""
        service = f"{span.kind.name.lower():8} {_text(span.resource.get('service.name', '?'))}"
        label = f"{prefix}{'└─ ' if last else '├─ '}{span.name}"
        rows.append((label, service, f"{duration} {_bar(span, start, total)}", _details(span) + marker))
        kids = children[span.span_id]
        for index, child in enumerate(kids):
            walk(child, prefix + ("   " if last else "│  "), index == len(kids) - 1)

    for root in children[None]:
        remote = f" (its parent {root.parent_span_id} is in the caller's process)" if root.parent_span_id else ""
        rows.append((f"trace {root.trace_id}{remote}",))
        start, total = root.start_time_unix_nano, root.end_time_unix_nano - root.start_time_unix_nano
        walk(root, "", True)
    width = max((len(row[0]) for row in rows if len(row) > 1), default=0)
    service_width = max((len(row[1]) for row in rows if len(row) > 1), default=0)
    return "\n".join(
        row[0] if len(row) == 1 else f"{row[0]:{width}}  {row[1]:{service_width}}  {row[2]}  {row[3]}".rstrip()
        for row in rows
    )
