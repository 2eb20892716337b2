"""Logs in the trace: a log line a tool writes carries the tool's SERVER span, with
`opentelemetry-instrumentation-logging` (record fields) or the SDK's logging handler (OTLP logs)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from support.apps import reference_app
from support.sessions import connected
from support.spans import ours

pytestmark = pytest.mark.anyio


async def test_a_log_line_in_a_tool_carries_the_tool_span(instrument: Any) -> None:
    """With `opentelemetry-instrumentation-logging` (record fields) or the SDK's `LoggingHandler` (OTLP logs)."""
    from opentelemetry.instrumentation.logging import LoggingInstrumentor
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import InMemoryLogExporter, SimpleLogRecordProcessor

    log_exporter = InMemoryLogExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    handler = LoggingHandler(logger_provider=provider)
    records: list[logging.LogRecord] = []
    collect = logging.Handler()
    collect.emit = records.append  # type: ignore[method-assign]
    app_logger = logging.getLogger("tests.apps")
    app_logger.addHandler(handler)
    app_logger.addHandler(collect)
    LoggingInstrumentor().instrument(set_logging_format=True)  # 0.61b0 injects only with the format
    exporter = instrument()
    try:
        async with connected("memory", reference_app()) as session:
            await session.call_tool("remember", {"note": "hello"})
    finally:
        LoggingInstrumentor().uninstrument()
        app_logger.removeHandler(handler)
        app_logger.removeHandler(collect)
    [tool] = [span for span in ours(exporter) if span.name == "tools/call remember" and span.kind is SpanKind.SERVER]
    trace_id, span_id = format(tool.context.trace_id, "032x"), format(tool.context.span_id, "016x")
    [record] = [record for record in records if record.getMessage() == "noted: hello"]
    assert (record.otelTraceID, record.otelSpanID) == (trace_id, span_id)  # type: ignore[attr-defined]
    [exported] = [data.log_record for data in log_exporter.get_finished_logs()]
    assert (exported.trace_id, exported.span_id) == (tool.context.trace_id, tool.context.span_id)
