"""mcp 2.x: the server runner's entry points for inbound messages; the SDK's own server span muted.

Every inbound request and notification, on every transport and in both protocol eras, passes through
`ServerRunner._on_request` / `_on_notify` outside the `Server.middleware` chain, so wrapping them gives one
span around the whole chain. The SDK's `OpenTelemetryMiddleware` stays in its place in that chain but only
calls the next middleware while we are instrumented.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from mcp.server.runner import ServerRunner
from mcp.shared.dispatcher import DispatchContext
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from opentelemetry import context as context_api
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, suppress_instrumentation, unwrap
from wrapt import wrap_function_wrapper

from opentelemetry_instrumentation_mcp._guard import guarded
from opentelemetry_instrumentation_mcp._http import http_transport
from opentelemetry_instrumentation_mcp._message import Message
from opentelemetry_instrumentation_mcp._operation import Handling, Operation, Telemetry
from opentelemetry_instrumentation_mcp._session import session_state
from opentelemetry_instrumentation_mcp._transport import stdio_transport

_SDK_MIDDLEWARE_MODULE = "mcp.server._otel"
_MODERN_HTTP_MODULE = "mcp.server._streamable_http_modern"
_SELF_QUERY = "_tool_input_schema"
"""The modern HTTP entry's own `tools/list` walk (to validate `Mcp-Param-*` headers): not an inbound message."""


def _error_code(exc: BaseException) -> tuple[int, str] | None:
    error = handler_exception_to_error_data(exc)
    return None if error is None else (error.code, error.message)


def _describe(runner: ServerRunner[Any], dctx: DispatchContext[Any], method: str, params: object) -> Message:
    fields: Mapping[str, Any] = params if isinstance(params, Mapping) else {}
    request = getattr(dctx.message_metadata, "request_context", None)
    return Message(
        method,
        request_id=dctx.request_id,
        meta=fields.get("_meta"),
        name=fields.get("name"),
        uri=fields.get("uri"),
        # before `initialize` is answered the connection holds only a default; the answer sets it
        protocol_version=None if method == "initialize" else runner.connection.protocol_version,
        # messages run in the context of the task that received them: on HTTP, the request's
        transport=http_transport(request, context_api.get_current()) if request is not None else stdio_transport(),
        session=session_state(runner.connection),
    )


def _record_result(operation: Operation, runner: ServerRunner[Any], method: str, result: object) -> None:
    if method == "initialize":
        operation.set_protocol_version(runner.connection.protocol_version)
    elif method == "tools/call" and isinstance(result, Mapping) and result.get("isError") is True:
        operation.tool_error()


def _bind_message(
    dctx: DispatchContext[Any], method: str, params: object = None
) -> tuple[DispatchContext[Any], str, object]:
    return dctx, method, params


def _mute_sdk_span(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Awaitable[Any]:
    """The SDK's middleware, reduced to calling the rest of the chain."""
    return _call_next(*args, **kwargs)


def _call_next(ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Awaitable[Any]:
    return call_next(ctx)


async def _untraced(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    with suppress_instrumentation():
        return await wrapped(*args, **kwargs)


class Patches:
    """The wrappers this package puts on mcp 2.x, and their removal."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry

    def apply(self) -> None:
        wrap_function_wrapper("mcp.server.runner", "ServerRunner._on_request", self._on_request)
        wrap_function_wrapper("mcp.server.runner", "ServerRunner._on_notify", self._on_notify)
        wrap_function_wrapper(_SDK_MIDDLEWARE_MODULE, "OpenTelemetryMiddleware.__call__", _mute_sdk_span)
        wrap_function_wrapper(_MODERN_HTTP_MODULE, _SELF_QUERY, _untraced)

    def remove(self) -> None:
        unwrap(ServerRunner, "_on_request")
        unwrap(ServerRunner, "_on_notify")
        unwrap(importlib.import_module(_SDK_MIDDLEWARE_MODULE).OpenTelemetryMiddleware, "__call__")
        unwrap(importlib.import_module(_MODERN_HTTP_MODULE), _SELF_QUERY)

    async def _on_request(
        self, wrapped: Any, instance: ServerRunner[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        bound = guarded("reading a request", lambda: _bind_message(*args, **kwargs), None)
        if bound is None or not is_instrumentation_enabled():
            return await wrapped(*args, **kwargs)
        dctx, method, params = bound
        with Handling(self._telemetry, lambda: _describe(instance, dctx, method, params), _error_code) as operation:
            result = await wrapped(*args, **kwargs)
            if operation is not None:
                guarded("recording a result", lambda: _record_result(operation, instance, method, result), None)
            return result

    async def _on_notify(
        self, wrapped: Any, instance: ServerRunner[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        bound = guarded("reading a notification", lambda: _bind_message(*args, **kwargs), None)
        if bound is None or not is_instrumentation_enabled():
            return await wrapped(*args, **kwargs)
        dctx, method, params = bound
        with Handling(self._telemetry, lambda: _describe(instance, dctx, method, params), _error_code):
            return await wrapped(*args, **kwargs)
