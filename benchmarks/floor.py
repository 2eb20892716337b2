"""A measuring stick, not an instrumentation: the least Python that records the spans `ours-spans` records for a
`tools/call` between the SDK's `ClientSession` and a server in one process, on mcp 2.x.

The same names, kinds, parents and attributes (`mcp.method.name`, `jsonrpc.request.id`, `gen_ai.operation.name`,
`gen_ai.tool.name`, `mcp.protocol.version`), the context carried in `params._meta`, the SDK's own tracing muted;
and nothing else: no metrics, no options, no session state beyond the negotiated version, no other transport, no
guard against a fault or a peer's odd input, no notification, no error but a tool's. `benchmarks/overhead.py`'s
`floor` configuration installs it, so that the cost of our spans can be read against the least any code that
records them can cost, beside the SDK's own tracing.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as context_api
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, TracerProvider


def _describe(method: str, params: Any) -> tuple[str, dict[str, Any]]:
    attributes: dict[str, Any] = {"mcp.method.name": method}
    tool = params.get("name") if method == "tools/call" and params else None
    if method == "tools/call":
        attributes["gen_ai.operation.name"] = "execute_tool"
    if isinstance(tool, str):
        attributes["gen_ai.tool.name"] = tool
        return f"{method} {tool}", attributes
    return method, attributes


def install(tracer_provider: TracerProvider) -> None:
    """Patch mcp 2.x, for the rest of the process."""
    from mcp.server._otel import OpenTelemetryMiddleware
    from mcp.server.runner import ServerRunner
    from mcp.shared import jsonrpc_dispatcher
    from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher

    tracer = tracer_provider.get_tracer("floor")
    on_request, send_raw_request = ServerRunner._on_request, JSONRPCDispatcher.send_raw_request

    class CurrentSpan:
        def __enter__(self) -> trace.Span:
            return trace.get_current_span()

        def __exit__(self, *exc: object) -> None:
            return None

    current_span = CurrentSpan()

    def otel_span(name: str, **kwargs: Any) -> CurrentSpan:
        return current_span

    # the two traced steps below share their shape but are written out: a helper would add a frame to the floor
    async def traced_on_request(self: ServerRunner[Any], dctx: Any, method: str, params: Any) -> Any:
        meta = params.get("_meta") if params else None
        parent = propagate.extract(meta) if meta else None
        name, attributes = _describe(method, params)
        attributes["jsonrpc.request.id"] = str(dctx.request_id)
        if self.connection.protocol_version:
            attributes["mcp.protocol.version"] = self.connection.protocol_version
        span = tracer.start_span(name, parent, SpanKind.SERVER, attributes, record_exception=False)
        token = context_api.attach(trace.set_span_in_context(span, parent))
        try:
            result = await on_request(self, dctx, method, params)
            if method == "tools/call" and result.get("isError") is True:
                span.set_attribute("error.type", "tool_error")
            return result
        finally:
            context_api.detach(token)
            span.end()

    async def traced_send_raw_request(self: JSONRPCDispatcher[Any], method: str, params: Any, *args: Any) -> Any:
        name, attributes = _describe(method, params)
        attributes["jsonrpc.request.id"] = str(self._next_id + 1)  # the id it mints next (no caller gives one here)
        version = getattr(self, "_floor_protocol_version", None)
        if version:
            attributes["mcp.protocol.version"] = version
        span = tracer.start_span(name, None, SpanKind.CLIENT, attributes, record_exception=False)
        token = context_api.attach(trace.set_span_in_context(span))
        try:
            result = await send_raw_request(self, method, params, *args)
            if method == "initialize":
                self._floor_protocol_version = result.get("protocolVersion")  # type: ignore[attr-defined]
            elif method == "tools/call" and result.get("isError") is True:
                span.set_attribute("error.type", "tool_error")
            return result
        finally:
            context_api.detach(token)
            span.end()

    def only_call_next(self: object, ctx: Any, call_next: Any) -> Any:
        return call_next(ctx)

    ServerRunner._on_request = traced_on_request  # type: ignore[method-assign]
    JSONRPCDispatcher.send_raw_request = traced_send_raw_request  # type: ignore[method-assign,assignment]
    OpenTelemetryMiddleware.__call__ = only_call_next  # type: ignore[method-assign]
    jsonrpc_dispatcher.otel_span = otel_span  # type: ignore[assignment]
