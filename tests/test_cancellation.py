"""A cancelled operation is not an error: the client's `notifications/cancelled`, and a caller that cancels its call."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from support.apps import reference_app
from support.peers import jsonrpc, raw_peer
from support.sessions import connected
from support.spans import one, ours

pytestmark = pytest.mark.anyio


async def test_a_cancelled_request(instrumented: InMemorySpanExporter) -> None:
    async def cancel_a_sleep() -> Any:
        """What the client sees after cancelling (mcp 1.9 ends the session: the same, traced or not)."""
        try:
            async with raw_peer(reference_app()) as peer:
                sleep = {"name": "sleep", "arguments": {"seconds": 5}}
                await peer.send(jsonrpc("tools/call", sleep, 99))
                await anyio.sleep(0.2)
                await peer.notify("notifications/cancelled", {"requestId": 99, "reason": "changed my mind"})
                return [await peer.request("ping")]
        except BaseException as failure:  # noqa: BLE001 - compared, not handled
            return type(failure).__name__

    with suppress_instrumentation():
        plain = await cancel_a_sleep()
    assert await cancel_a_sleep() == plain
    [span] = [span for span in ours(instrumented) if span.name == "tools/call sleep"]
    assert span.end_time is not None
    assert_cancelled(span)


def assert_cancelled(span: ReadableSpan) -> None:
    """Cancelled, and said so: not an error, and nothing of the exception (a task's repr) on the span."""
    assert span.status.status_code is StatusCode.UNSET
    assert "error.type" not in (span.attributes or {})
    assert [event.name for event in span.events] == ["cancelled"]


async def test_a_call_its_caller_cancels(instrumented: InMemorySpanExporter) -> None:
    async with connected("memory", reference_app()) as session:
        with anyio.move_on_after(1):  # a busy machine may take a while to send the call
            await session.call_tool("sleep", {"seconds": 5})
        await session.send_ping()  # the session goes on
    assert_cancelled(one(ours(instrumented), "tools/call sleep", SpanKind.CLIENT))
