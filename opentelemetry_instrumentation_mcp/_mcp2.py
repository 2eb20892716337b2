"""The mcp 2.x adapter: where its messages pass, how to read them, their results and errors, and how to hand a
message on with its context. Its own tracing is muted while instrumented.

Received: every request and notification a server receives, on every transport and in both protocol eras, passes
`ServerRunner._on_request` / `_on_notify` outside the `Server.middleware` chain (whose `OpenTelemetryMiddleware`
then only calls the next middleware); what a client receives passes `ClientSession._on_request` / `_on_notify`.
Results are the wire's dicts.

Sent: every request and notification, from either side, leaves through a dispatcher's `send_raw_request` /
`notify` (`JSONRPCDispatcher` on the wire, `DirectDispatcher` in process), or, from inside a handler, through a
dispatch context that sends itself (the single-exchange HTTP dispatch, in-process dispatch). A server's dispatcher
and those contexts hold the state of the session they send on. The context goes into a copy of the params; the
SDK's own client span and injection, which `JSONRPCDispatcher` takes by name from `mcp.shared._otel`, are replaced
in that module by no-ops. In process (`DirectDispatcher`) nothing carries the context: the peer handles the message
in the sender's task, where the receiving side reads the current context as the message's own.

`Server.middleware`, the one public hook on this path, is not used for the SERVER span: it sees neither the
connection (the session's state) nor what a client receives, and a server may drop the SDK's own middleware.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from types import MappingProxyType, TracebackType
from typing import Any

from mcp.client.session import ClientSession
from mcp.server.connection import Connection
from mcp.server.runner import ServerRunner
from mcp.shared.direct_dispatcher import DIRECT_TRANSPORT_KIND
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from mcp_types import CONNECTION_CLOSED, PROTOCOL_VERSION_META_KEY, REQUEST_TIMEOUT
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation

from opentelemetry_instrumentation_mcp._conventions import JSONRPC_REQUEST_ID
from opentelemetry_instrumentation_mcp._guard import guarded, report
from opentelemetry_instrumentation_mcp._message import Message, session_state, share_state
from opentelemetry_instrumentation_mcp._operation import JsonRpcError, carried_error_reader
from opentelemetry_instrumentation_mcp._otel_private import current_context
from opentelemetry_instrumentation_mcp._patching import Target, argument
from opentelemetry_instrumentation_mcp._propagation import carrier_for, inject_into_meta, inject_into_params
from opentelemetry_instrumentation_mcp._transport import request_transport, session_transport
from opentelemetry_instrumentation_mcp._wrappers import (
    Args,
    Kwargs,
    SdkAdapter,
    note_request_id,
    noting_client_transport,
)

_DISPATCHER = "mcp.shared.jsonrpc_dispatcher"
_DIRECT = "mcp.shared.direct_dispatcher"
_MODERN_HTTP = "mcp.server._streamable_http_modern"
_SENDING_CONTEXTS = frozenset({"_SingleExchangeDispatchContext", "_DirectDispatchContext"})
"""Dispatch contexts that send a handler's messages themselves, not through a dispatcher's `notify` /
`send_raw_request`: the single-exchange HTTP dispatch (stateless, and the 2026-07-28 era) and in-process dispatch."""
_LOCAL_FAILURES = frozenset({REQUEST_TIMEOUT, CONNECTION_CLOSED})
"""Codes of the errors the SDK raises itself: a request timed out, the connection closed."""
_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})


def _fields(value: object) -> Mapping[str, Any]:
    """The fields of params or a result as 2.x holds them: a dict (any other mapping too); none otherwise."""
    if type(value) is dict:  # what the SDK holds, checked first: an ABC's isinstance is slower
        return value
    if value is None:
        return _NO_FIELDS
    return value if isinstance(value, Mapping) else _NO_FIELDS


def _with_current_context(meta: object) -> object:
    """The `_meta` of a message dispatched in process, with the context it was sent in, which is this task's current
    one (the sender's CLIENT span): it is read as the message's own, since nothing carries it in `_meta`."""
    carrier = carrier_for(current_context())
    if carrier is None:
        return meta
    return {**meta, **carrier} if isinstance(meta, Mapping) else carrier


def _bind_message(dctx: Any, method: str, params: object = None) -> tuple[Any, str, object]:
    return dctx, method, params


def _bind_send(method: str, params: object = None, opts: object = None, **kwargs: Any) -> tuple[str, object, Any]:
    return method, params, opts


def _inject(message: Message, args: Args, kwargs: Kwargs, carrier: Mapping[str, object]) -> tuple[Args, Kwargs]:
    """The send's arguments with a copy of the params whose `_meta` carries `carrier`."""
    injected = inject_into_params(message.params, carrier)
    if len(args) >= 2:
        return (args[0], injected, *args[2:]), kwargs
    return args, {**kwargs, "params": injected}


class _NoSpan:
    """A context manager that makes no span: one instance serves every use."""

    def __enter__(self) -> trace.Span:
        return trace.INVALID_SPAN

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


_NO_SPAN = _NoSpan()


def _id_to_mint(dispatcher: Any) -> int | None:
    """The id `JSONRPCDispatcher.send_raw_request`, called now, mints for a request its caller gave none (its first
    steps, the same from 2.0 to 2.3): the next of its counter that is not in flight; None where it refuses to send."""
    if dispatcher._closed or not dispatcher._running:
        return None
    request_id: int = dispatcher._next_id + 1
    while request_id in dispatcher._pending:
        request_id += 1
    return request_id


def _no_sdk_client_span(name: str, *, attributes: Mapping[str, Any] | None = None, **kwargs: Any) -> _NoSpan:
    """The dispatcher's `otel_span(...)`, muted: no span, and the request's id (which the dispatcher has allocated by
    then) noted for our CLIENT span, should it not have been read as the send started."""
    if attributes:
        note_request_id(attributes.get(JSONRPC_REQUEST_ID))
    return _NO_SPAN


def _inject_current_context(meta: dict[str, Any]) -> None:
    """The dispatcher's `inject_trace_context(out_meta)`, into its own copy of a request's `_meta`: the context
    current there, the request's CLIENT operation's (or, for a request that has none, whatever is current, as the SDK
    injects it), by our injection rule."""
    try:
        inject_into_meta(meta, current_context())
    except Exception as error:  # noqa: BLE001 - a fault of ours never reaches the host
        report("injecting trace context", error)


def _only_call_next(self: object, ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Awaitable[Any]:
    """`OpenTelemetryMiddleware.__call__`, muted: it only calls the rest of the middleware chain."""
    return call_next(ctx)


async def _suppressed(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    with suppress_instrumentation():
        return await wrapped(*args, **kwargs)


def _noting_direct_id(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    context = wrapped(*args, **kwargs)
    note_request_id(kwargs.get("request_id"))
    return context


def _sharing_connection_state(wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
    guarded(
        "noting a dispatcher's session",
        lambda: _share_connection_state(instance, argument(args, kwargs, 0, "on_request")),
        None,
    )
    return wrapped(*args, **kwargs)


def _share_connection_state(dispatcher: object, on_request: object) -> None:
    runner = getattr(on_request, "__self__", None)
    if isinstance(runner, ServerRunner):
        share_state(dispatcher, session_state(runner.connection))


class Adapter(SdkAdapter):
    """The targets of mcp 2.x and how to read what passes them."""

    read_fields = staticmethod(_fields)
    read_sent_error = staticmethod(carried_error_reader(MCPError, _LOCAL_FAILURES))

    @staticmethod
    def read_received_error(exc: BaseException, /) -> JsonRpcError | None:
        """The JSON-RPC error the SDK answers a handler's exception with (its own, and -32602 for a pydantic
        `ValidationError`), if it answers one."""
        error = handler_exception_to_error_data(exc)
        return None if error is None else JsonRpcError(error.code, error.message)

    def targets(self) -> list[Target]:
        wrappers = self._wrappers
        received = wrappers.receiving(self._read_received)
        # a request carries the context current as the dispatcher injects it (`inject_trace_context`), in process none:
        # the peer handles the message in this task, in the current context
        read_request, read_notification = partial(self._read_sent, True), partial(self._read_sent, False)
        sent_requests = wrappers.sending(read_request, None, request=True)
        minted_requests = wrappers.sending(read_request, None, request=True, next_id=_id_to_mint)
        sent_notifications = wrappers.sending(read_notification, _inject, request=False)
        in_process_notifications = wrappers.sending(read_notification, None, request=False)
        session_entered, session_exited = wrappers.timing_sessions(self._end_client_session)
        sends = "reads the dispatcher's session state, set by `JSONRPCDispatcher.run` or the session it serves"
        return [
            Target(
                "mcp.server.runner",
                "ServerRunner._on_request",
                received,
                why="every request a server receives, any transport and era, with the connection (its session); the "
                "dispatch contexts that send a handler's messages themselves are told by their private class names",
                per_message=True,
            ),
            Target(
                "mcp.server.runner",
                "ServerRunner._on_notify",
                received,
                why="every notification a server receives, with the connection (its session)",
                per_message=True,
            ),
            Target(
                "mcp.client.session",
                "ClientSession._on_request",
                received,
                why="every request a client receives (sampling, elicitation, roots)",
                per_message=True,
            ),
            Target(
                "mcp.client.session",
                "ClientSession._on_notify",
                received,
                why="every notification a client receives (logs, progress, list changes)",
                per_message=True,
            ),
            *(
                Target(module, f"{sender}.{method}", wrapper, why=sends, per_message=True)
                for module, sender, request, notification in (
                    (_DISPATCHER, "JSONRPCDispatcher", minted_requests, sent_notifications),
                    (_DIRECT, "DirectDispatcher", sent_requests, in_process_notifications),
                    (_DIRECT, "_DirectDispatchContext", sent_requests, in_process_notifications),
                )
                for method, wrapper in (("send_raw_request", request), ("notify", notification))
            ),
            Target(
                _MODERN_HTTP,
                "_SingleExchangeDispatchContext.notify",
                sent_notifications,
                why="a handler's notification in a single-exchange HTTP dispatch (it refuses requests unsent)",
                per_message=True,
            ),
            Target(
                "mcp.client.session",
                "ClientSession.__init__",
                noting_client_transport(lambda session: (session, session._dispatcher)),
                why="the transport its task opened last; `_dispatcher`, which sends the session's messages, too",
            ),
            Target(
                "mcp.client.session",
                "ClientSession.__aenter__",
                session_entered,
                why="a client session starts",
            ),
            Target(
                "mcp.client.session",
                "ClientSession.__aexit__",
                session_exited,
                why="a client session ends, however it ends",
            ),
            Target(
                "mcp.server.connection",
                "Connection.for_loop",
                self._starting_server_session,
                why="a handshake-era server session begins (2026-07-28 requests make connections without it)",
            ),
            Target(
                "mcp.server.runner",
                "aclose_shielded",
                self._ending_server_session,
                why="every serving loop runs it, from its `finally`, as its connection ends",
            ),
            Target(
                _DISPATCHER,
                "JSONRPCDispatcher.run",
                _sharing_connection_state,
                why="a dispatcher serving a `ServerRunner` sends on that runner's connection's session",
            ),
            Target(
                _DIRECT,
                "DirectDispatcher._make_context",
                _noting_direct_id,
                why="the id an in-process request is given",
                per_message=True,
            ),
            Target(
                "mcp.server._otel",
                "OpenTelemetryMiddleware.__call__",
                _only_call_next,
                why="the SDK's own SERVER span, muted: it only calls the rest of the middleware chain",
                replaces=True,
            ),
            Target(
                _DISPATCHER,
                "otel_span",
                _no_sdk_client_span,
                why="the SDK's own CLIENT span, muted where the dispatcher bound it by name; it is handed the id of "
                "the request being sent, which the dispatcher has just allocated",
                replaces=True,
            ),
            Target(
                _DISPATCHER,
                "inject_trace_context",
                _inject_current_context,
                why="the SDK's own injection, into its copy of a request's `_meta`: our CLIENT span's context, by our "
                "injection rule",
                replaces=True,
            ),
            Target(
                _MODERN_HTTP,
                "_tool_input_schema",
                _suppressed,
                why="the modern HTTP entry's own `tools/list` walk (it validates `Mcp-Param-*` headers): no message",
            ),
        ]

    def _read_received(self, receiver: ServerRunner[Any] | ClientSession, args: Args, kwargs: Kwargs) -> Message | None:
        """`_on_request(dctx, method, params)` / `_on_notify(...)` of a server's runner (its connection is the session)
        or a client session."""
        session: Connection | ClientSession = receiver.connection if isinstance(receiver, ServerRunner) else receiver
        dctx, method, params = args if len(args) == 3 else _bind_message(*args, **kwargs)  # the SDK's call first
        state = session_state(session)
        if type(dctx).__name__ in _SENDING_CONTEXTS:  # it sends the handler's notifications and requests itself
            share_state(dctx, state)
        fields = params if type(params) is dict else _fields(params)
        meta = fields.get("_meta")
        if getattr(dctx.transport, "kind", None) == DIRECT_TRANSPORT_KIND:
            meta = _with_current_context(meta)
        metadata = dctx.message_metadata
        request = None if metadata is None else getattr(metadata, "request_context", None)  # the HTTP request
        if not self._operations.traces_received(method, meta, request, state):
            return None
        if request is not None:
            transport = request_transport(request, state)
        else:
            transport = session_transport(state, client=isinstance(session, ClientSession))
        # before `initialize` is answered the connection holds only a default; the answer sets it
        version = None if method == "initialize" else session.protocol_version
        state.protocol_version = state.protocol_version or version
        return Message.of(
            method,
            params,
            fields,
            request_id=dctx.request_id,
            meta=meta,
            protocol_version=version,
            transport=transport,
            session=state,
        )

    def _read_sent(self, request: bool, sender: object, args: Args, kwargs: Kwargs) -> Message | None:
        """`send_raw_request(method, params, opts)` / `notify(...)` of a dispatcher or a dispatch context."""
        method, params, opts = args if len(args) == 3 else _bind_send(*args, **kwargs)  # the SDK's call first
        fields = params if type(params) is dict else _fields(params)
        meta = fields.get("_meta")
        if not self._operations.traces_sent(meta):
            return None
        state = session_state(sender)
        # a 2026-07-28 request names its version
        envelope = None if meta is None else _fields(meta).get(PROTOCOL_VERSION_META_KEY)
        return Message.of(
            method,
            params,
            fields,
            # the caller's id; else the one the dispatcher mints, read as the send starts (`_id_to_mint`) or noted as
            # it sends (`note_request_id`)
            request_id=(opts if type(opts) is dict else _fields(opts)).get("request_id") if request and opts else None,
            meta=meta,
            protocol_version=envelope if isinstance(envelope, str) else state.protocol_version,
            transport=session_transport(state, client=state.client is not None),
            session=state,
        )

    def _end_client_session(self, session: ClientSession, error: object) -> None:
        state = session_state(session)
        state.protocol_version = session.protocol_version
        network = session_transport(state, client=True).attributes
        self._wrappers.sessions.end(state, server=False, network=network, error=error)

    def _starting_server_session(self, wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        """`Connection.for_loop(...)`: the connection it makes is a session."""
        connection = wrapped(*args, **kwargs)
        if self._operations.enabled():
            guarded("starting a session", lambda: self._wrappers.sessions.start(session_state(connection)), None)
        return connection

    async def _ending_server_session(self, wrapped: Any, instance: Any, args: Args, kwargs: Kwargs) -> Any:
        """`aclose_shielded(connection)`: the connection's session ends, with what ended it, if anything."""
        error = sys.exc_info()[1]  # called from the loops' `finally`
        try:
            return await wrapped(*args, **kwargs)
        finally:
            guarded("ending a session", lambda: self._end_server_session(args, kwargs, error), None)

    def _end_server_session(self, args: Args, kwargs: Kwargs, error: object) -> None:
        state = session_state(argument(args, kwargs, 0, "connection"))
        network = session_transport(state, client=False).attributes
        self._wrappers.sessions.end(state, server=True, network=network, error=error)
