"""mcp 2.x: the entry points of inbound messages on both sides, the dispatchers' sends, and the SDK's own
tracing muted while we are instrumented.

Inbound: every request and notification a server receives, on every transport and in both protocol eras,
passes `ServerRunner._on_request` / `_on_notify` outside the `Server.middleware` chain (whose
`OpenTelemetryMiddleware` then only calls the next middleware); what a client receives passes
`ClientSession._on_request` / `_on_notify`.

Outbound: every request and notification, from either side, leaves through a dispatcher's
`send_raw_request` / `notify` (`JSONRPCDispatcher` on the wire, `DirectDispatcher` in process), or, from inside a
handler, through a dispatch context that sends itself (the single-exchange HTTP dispatch, in-process dispatch). A
server's dispatcher and those contexts hold the state of the session they send on. The CLIENT
span's context goes into a copy of the params; the SDK's own client span and injection, which
`JSONRPCDispatcher` takes by name from `mcp.shared._otel`, are replaced in that module by no-ops.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from functools import partial
from types import MappingProxyType, TracebackType
from typing import Any

from mcp.client.session import ClientSession
from mcp.server.connection import Connection
from mcp.server.runner import ServerRunner
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from mcp_types import CONNECTION_CLOSED, PROTOCOL_VERSION_META_KEY, REQUEST_TIMEOUT
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation

from opentelemetry_instrumentation_mcp._guard import guarded, report
from opentelemetry_instrumentation_mcp._http import http_transport
from opentelemetry_instrumentation_mcp._message import Message, Transport
from opentelemetry_instrumentation_mcp._operation import Operation, Telemetry
from opentelemetry_instrumentation_mcp._patching import Target
from opentelemetry_instrumentation_mcp._propagation import carrier, passes_nothing, sends_nothing, with_carrier
from opentelemetry_instrumentation_mcp._session import SessionState, session_state, share_state
from opentelemetry_instrumentation_mcp._transport import (
    client_transport,
    network_attributes,
    stdio_transport,
    take_client_transport,
)

_DISPATCHER_MODULE = "mcp.shared.jsonrpc_dispatcher"
_DIRECT_MODULE = "mcp.shared.direct_dispatcher"
_MODERN_HTTP_MODULE = "mcp.server._streamable_http_modern"
_SENDING_CONTEXTS = frozenset({"_SingleExchangeDispatchContext", "_DirectDispatchContext"})
"""Dispatch contexts that send a handler's messages themselves, not through a dispatcher's `notify` /
`send_raw_request`: the single-exchange HTTP dispatch (stateless, and the 2026-07-28 era) and in-process dispatch."""
_LOCAL_FAILURES = frozenset({REQUEST_TIMEOUT, CONNECTION_CLOSED})
"""Codes of the errors the SDK raises itself: a request timed out, the connection closed."""


def _received_error_code(exc: BaseException) -> tuple[int, str] | None:
    error = handler_exception_to_error_data(exc)
    return None if error is None else (error.code, error.message)


def _sent_error_code(exc: BaseException) -> tuple[int, str] | None:
    """The peer's JSON-RPC error; the SDK's own timeouts and closed connections count as exceptions."""
    if isinstance(exc, MCPError) and exc.error.code not in _LOCAL_FAILURES:
        return exc.error.code, exc.error.message
    return None


_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})


def _fields(params: object) -> Mapping[str, Any]:
    if type(params) is dict:  # what the SDK holds, checked first: an ABC's isinstance is slower
        return params
    return params if isinstance(params, Mapping) else _NO_FIELDS


def _envelope_version(params: Mapping[str, Any]) -> str | None:
    """The protocol version a 2026-07-28 request names in its own `_meta`."""
    version = _fields(params.get("_meta")).get(PROTOCOL_VERSION_META_KEY)
    return version if isinstance(version, str) else None


def _inbound(
    method: str,
    dctx: Any,
    params: object,
    fields: Mapping[str, Any],
    request: object,
    *,
    session: Connection | ClientSession,
    state: SessionState,
) -> Message:
    """A received message; `fields` are its params as a mapping, `request` the HTTP request that carried it."""
    version = session.protocol_version
    if request is not None:  # messages run in the context of the task that received them: on HTTP, the request's
        transport = http_transport(request, context_api.get_current())
        # what the session's duration metric, and what the server sends, will tell
        state.network = network_attributes(transport.attributes)
        state.session_id = transport.session_id or state.session_id
    else:
        transport = client_transport(state) if isinstance(session, ClientSession) else stdio_transport()
    if method != "initialize":
        state.protocol_version = state.protocol_version or version
    return Message(
        method,
        request_id=dctx.request_id,
        meta=fields.get("_meta"),
        name=fields.get("name"),
        uri=fields.get("uri"),
        arguments=fields.get("arguments"),
        params=params,
        # before `initialize` is answered the connection holds only a default; the answer sets it
        protocol_version=None if method == "initialize" else version,
        transport=transport,
        session=state,
    )


def _outbound(method: str, params: object, request_id: object, state: SessionState) -> Message:
    fields = _fields(params)
    return Message(
        method,
        request_id=request_id,
        name=fields.get("name"),
        uri=fields.get("uri"),
        arguments=fields.get("arguments"),
        params=params,
        protocol_version=_envelope_version(fields) or state.protocol_version,
        transport=client_transport(state) if state.client is not None else _server_transport(state),
        session=state,
    )


def _server_transport(state: SessionState) -> Transport:
    """The transport of what a server sends on a session: the one its messages arrived on."""
    stdio = stdio_transport()
    if stdio.attributes or (not state.network and state.session_id is None):
        return stdio
    return Transport(state.network, session_id=state.session_id)


def _record_result(operation: Operation, method: str, result: object, state: SessionState) -> None:
    """A request's result (a dict on the wire side), in whichever direction it went."""
    operation.result(result)
    fields = _fields(result)
    if method == "initialize":
        version = fields.get("protocolVersion")
        if isinstance(version, str):
            state.protocol_version, state.initialized = version, True
            operation.set_protocol_version(version)
    elif method == "tools/call" and fields.get("isError") is True:
        operation.tool_error()


def _bind_message(dctx: Any, method: str, params: object = None) -> tuple[Any, str, object]:
    return dctx, method, params


def _bind_send(method: str, params: object = None, opts: object = None, **kwargs: Any) -> tuple[str, object, Any]:
    return method, params, opts


def _injected(
    args: tuple[Any, ...], kwargs: dict[str, Any], params: object, operation: Operation
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The send's arguments with a copy of the params whose `_meta` carries the operation's context (the caller's
    objects stay as they are); as they were when there is no context to send."""
    sent = carrier(operation.context)
    if sent is None:
        return args, kwargs
    injected = with_carrier(params, sent)
    if len(args) >= 2:
        return (args[0], injected, *args[2:]), kwargs
    return args, {**kwargs, "params": injected}


def _client_created(wrapped: Any, instance: ClientSession, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """`ClientSession.__init__`: the session, and the dispatcher it sends with, talk over the transport its task
    opened last."""
    wrapped(*args, **kwargs)
    guarded("noting a session's transport", lambda: _note_client(instance), None)


def _note_client(session: ClientSession) -> None:
    opened = take_client_transport()
    session_state(session).client = opened
    session_state(session._dispatcher).client = opened  # the SDK's own dispatcher sends the session's messages


def _dispatcher_runs(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`JSONRPCDispatcher.run(on_request, ...)`: a dispatcher that serves a connection (whatever the driver) sends
    on that connection's session."""
    guarded(
        "noting a dispatcher's session", lambda: _note_dispatcher(instance, _first(args, kwargs, "on_request")), None
    )
    return wrapped(*args, **kwargs)


def _first(args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> Any:
    return args[0] if args else kwargs.get(name)


def _note_dispatcher(dispatcher: object, on_request: object) -> None:
    runner = getattr(on_request, "__self__", None)
    if isinstance(runner, ServerRunner):
        share_state(dispatcher, session_state(runner.connection))


_sending: ContextVar[Operation | None] = ContextVar("opentelemetry_mcp_sending", default=None)
"""The CLIENT operation of the request being sent in this task, which learns its id as the dispatcher allocates it."""


def _allocated(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`JSONRPCDispatcher._allocate_id()`: the id of the request being sent (the last one allocated wins: the
    dispatcher skips ids a caller's request holds)."""
    request_id = wrapped(*args, **kwargs)
    _note_request_id(request_id)
    return request_id


def _direct_context(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`DirectDispatcher._make_context(..., request_id=)`: the id an in-process request is given."""
    context = wrapped(*args, **kwargs)
    _note_request_id(kwargs.get("request_id"))
    return context


def _note_request_id(request_id: object) -> None:
    operation = _sending.get()
    if operation is not None and request_id is not None:
        try:
            operation.set_request_id(request_id)
        except Exception as error:  # noqa: BLE001
            report("noting a request's id", error)


def _mute_sdk_span(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Awaitable[Any]:
    """The SDK's server middleware, reduced to calling the rest of the chain."""
    return _call_next(*args, **kwargs)


def _call_next(ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Awaitable[Any]:
    return call_next(ctx)


class _NoSpan:
    """A context manager that makes no span: one instance serves every use."""

    def __enter__(self) -> trace.Span:
        return trace.INVALID_SPAN

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


_NO_SPAN = _NoSpan()


def _mute_sdk_client_span(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The SDK's `otel_span` in its dispatcher: no span (ours is the active one, from our wrapper)."""
    return _NO_SPAN


def _skip_sdk_injection(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """The SDK's `inject_trace_context` in its dispatcher: the params already carry our context."""


async def _untraced(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    with suppress_instrumentation():
        return await wrapped(*args, **kwargs)


class Patches:
    """The wrappers this package puts on mcp 2.x."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry

    def targets(self) -> list[Target]:
        entered, exited = self._telemetry.session_wrappers(self._client_ended)
        sends = [
            Target(
                module,
                f"{sender}.{method}",
                partial(self._send, method == "send_raw_request"),
            )
            for module, sender in (
                (_DISPATCHER_MODULE, "JSONRPCDispatcher"),
                (_DIRECT_MODULE, "DirectDispatcher"),
                (_DIRECT_MODULE, "_DirectDispatchContext"),
            )
            for method in ("send_raw_request", "notify")
        ]
        return [
            Target("mcp.client.session", "ClientSession.__init__", _client_created),
            Target("mcp.client.session", "ClientSession.__aenter__", entered),
            Target("mcp.client.session", "ClientSession.__aexit__", exited),
            Target("mcp.client.session", "ClientSession._on_request", self._client_receive),
            Target("mcp.client.session", "ClientSession._on_notify", self._client_receive),
            Target("mcp.server.connection", "Connection.for_loop", self._connection_opened),
            Target("mcp.server.runner", "aclose_shielded", self._connection_closed),
            Target("mcp.server.runner", "ServerRunner._on_request", self._server_receive),
            Target("mcp.server.runner", "ServerRunner._on_notify", self._server_receive),
            Target(_DISPATCHER_MODULE, "JSONRPCDispatcher.run", _dispatcher_runs),
            Target(_DISPATCHER_MODULE, "JSONRPCDispatcher._allocate_id", _allocated),
            Target(_DIRECT_MODULE, "DirectDispatcher._make_context", _direct_context),
            *sends,
            # it has no back channel: its requests are refused unsent
            Target(_MODERN_HTTP_MODULE, "_SingleExchangeDispatchContext.notify", partial(self._send, False)),
            # the SDK's own tracing, muted
            Target("mcp.server._otel", "OpenTelemetryMiddleware.__call__", _mute_sdk_span),
            Target(_DISPATCHER_MODULE, "otel_span", _mute_sdk_client_span),
            Target(_DISPATCHER_MODULE, "inject_trace_context", _skip_sdk_injection),
            # the modern HTTP entry's own `tools/list` walk (to validate `Mcp-Param-*` headers): not a message
            Target(_MODERN_HTTP_MODULE, "_tool_input_schema", _untraced),
        ]

    def _client_ended(self, session: ClientSession, error: object) -> None:
        state = session_state(session)
        state.protocol_version = session.protocol_version
        network = client_transport(state).attributes
        self._telemetry.session_ended(state, server=False, network=network, error=error)

    def _connection_opened(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        """`Connection.for_loop`: a handshake-era session begins (per-request 2026-07-28 connections are none)."""
        connection = wrapped(*args, **kwargs)
        if self._telemetry.enabled():
            guarded("starting a session", lambda: self._telemetry.session_started(session_state(connection)), None)
        return connection

    async def _connection_closed(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        """`aclose_shielded(connection)`, which every serving loop runs as its connection ends."""
        error = sys.exc_info()[1]  # called from the loops' `finally`: what ended the connection, if anything
        try:
            return await wrapped(*args, **kwargs)
        finally:
            connection = args[0] if args else kwargs.get("connection")
            guarded("ending a session", lambda: self._connection_ended(connection, error), None)

    def _connection_ended(self, connection: Connection, error: object) -> None:
        state = session_state(connection)
        stdio = stdio_transport()
        network = stdio.attributes or state.network
        self._telemetry.session_ended(state, server=True, network=network, error=error)

    def _receive(
        self, wrapped: Any, args: tuple[Any, ...], kwargs: dict[str, Any], session: Connection | ClientSession
    ) -> Any:
        """An inbound message on `session`; with nothing to record or pass on, the handling runs as it is."""
        telemetry = self._telemetry
        if not telemetry.active:
            return wrapped(*args, **kwargs)
        try:
            dctx, method, params = _bind_message(*args, **kwargs)
            state = session_state(session)
            if type(dctx).__name__ in _SENDING_CONTEXTS:  # it sends the handler's notifications and requests itself
                share_state(dctx, state)
            fields = _fields(params)
            request = getattr(dctx.message_metadata, "request_context", None)
            if (
                not telemetry.recording() and passes_nothing(method, fields.get("_meta"), request, state)
            ) or not telemetry.enabled():
                return wrapped(*args, **kwargs)
        except Exception as error:  # noqa: BLE001
            report("reading a message", error)
            return wrapped(*args, **kwargs)
        describe = lambda: _inbound(method, dctx, params, fields, request, session=session, state=state)  # noqa: E731
        return self._handled(wrapped, args, kwargs, method=method, describe=describe, state=state)

    async def _handled(
        self,
        wrapped: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        method: str,
        describe: Callable[[], Message],
        state: SessionState,
    ) -> Any:
        with self._telemetry.handling(method, describe, _received_error_code) as operation:
            result = await wrapped(*args, **kwargs)
            if operation is not None:
                try:
                    _record_result(operation, method, result, state)
                except Exception as error:  # noqa: BLE001
                    report("recording a result", error)
            return result

    def _server_receive(self, wrapped: Any, instance: ServerRunner[Any], args: Any, kwargs: Any) -> Any:
        return self._receive(wrapped, args, kwargs, instance.connection)

    def _client_receive(self, wrapped: Any, instance: ClientSession, args: Any, kwargs: Any) -> Any:
        return self._receive(wrapped, args, kwargs, instance)

    def _send(self, request: bool, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A request (else a notification) leaving `instance`; with nothing to record or send, it goes as it is."""
        telemetry = self._telemetry
        if not telemetry.active:
            return wrapped(*args, **kwargs)
        try:
            method, params, opts = _bind_send(*args, **kwargs)
            meta = _fields(params).get("_meta")
            if (not telemetry.recording() and sends_nothing(meta)) or not telemetry.enabled():
                return wrapped(*args, **kwargs)
            # a request's id is the caller's, else the one the dispatcher allocates (`_sending` learns it)
            request_id = _fields(opts).get("request_id") if request else None
            state = session_state(instance)
        except Exception as error:  # noqa: BLE001
            report(f"reading a {'request' if request else 'notification'}", error)
            return wrapped(*args, **kwargs)
        return self._sent(
            wrapped,
            args,
            kwargs,
            method=method,
            params=params,
            meta=meta,
            request_id=request_id,
            state=state,
            request=request,
        )

    async def _sent(
        self,
        wrapped: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        method: str,
        params: object,
        meta: object,
        request_id: object,
        state: SessionState,
        request: bool,
    ) -> Any:
        describe = lambda: _outbound(method, params, request_id, state)  # noqa: E731
        with self._telemetry.sending(method, describe, meta, _sent_error_code) as operation:
            if operation is None:
                return await wrapped(*args, **kwargs)
            try:
                args, kwargs = _injected(args, kwargs, params, operation)
            except Exception as error:  # noqa: BLE001
                report("injecting trace context", error)
            if not request:
                return await wrapped(*args, **kwargs)
            # a recorded span learns the id the dispatcher allocates
            token = _sending.set(operation) if operation.recording else None
            try:
                result = await wrapped(*args, **kwargs)
            finally:
                if token is not None:
                    _sending.reset(token)
            try:
                _record_result(operation, method, result, state)
            except Exception as error:  # noqa: BLE001
                report("recording a result", error)
            return result
