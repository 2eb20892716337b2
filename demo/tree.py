"""Prints received spans as trace trees, with durations, the way a tracing UI lays them out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from demo.receiver import ReceivedSpan

_SHOWN_ATTRIBUTES = ("mcp.method.name", "gen_ai.tool.name", "jsonrpc.request.id", "network.transport", "error.type")


def _duration_ms(span: ReceivedSpan) -> float:
    return (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6


def _columns(span: ReceivedSpan, slowest: float) -> tuple[str, str, str]:
    duration = _duration_ms(span)
    bar = "█" * max(1, round(24 * duration / slowest)) if slowest else ""
    details = " ".join(f"{key}={span.attributes[key]}" for key in _SHOWN_ATTRIBUTES if key in span.attributes)
    service = span.resource.get("service.name", "?")
    return f"{span.kind.name.lower():8} {service}", f"{duration:8.1f} ms {bar:24}", details


def render(spans: Iterable[ReceivedSpan]) -> str:
    """Every trace in `spans`, one tree each, children in start order."""
    spans = sorted(spans, key=lambda span: span.start_time_unix_nano)
    ids = {span.span_id for span in spans}
    children: dict[str | None, list[ReceivedSpan]] = defaultdict(list)
    for span in spans:
        children[span.parent_span_id if span.parent_span_id in ids else None].append(span)
    slowest = max((_duration_ms(span) for span in spans), default=0.0)
    rows: list[tuple[str, ...]] = []

    def walk(span: ReceivedSpan, prefix: str, last: bool) -> None:
        rows.append((f"{prefix}{'└─ ' if last else '├─ '}{span.name}", *_columns(span, slowest)))
        kids = children[span.span_id]
        for index, child in enumerate(kids):
            walk(child, prefix + ("   " if last else "│  "), index == len(kids) - 1)

    for root in children[None]:
        remote = f" (its parent {root.parent_span_id} is in the caller's process)" if root.parent_span_id else ""
        rows.append((f"trace {root.trace_id}{remote}",))
        walk(root, "", True)
    width = max((len(row[0]) for row in rows if len(row) > 1), default=0)
    service_width = max((len(row[1]) for row in rows if len(row) > 1), default=0)
    return "\n".join(
        row[0] if len(row) == 1 else f"{row[0]:{width}}  {row[1]:{service_width}}  {row[2]}  {row[3]}".rstrip()
        for row in rows
    )
