"""The mcp 1.x adapter: where its messages pass, how to read them, their results and errors, and how to hand a
message on with its context. 1.x has no tracing of its own.

Received: the low-level `Server._handle_message` runs once per request and notification a server receives (in its
own task), except `initialize`, which `ServerSession._received_request` answers inline in the receive loop; a
client's `ClientSession._received_request` / `_received_notification` handle what the server sends. The SDK answers
a request through its `RequestResponder`, not by returning the result: the answer is read off that one responder's
`respond` for the length of the handling.

Sent: every request and notification, from either side, passes `BaseSession.send_request` / `send_notification`,
which dump the message to JSON; the message is handed to them behind a proxy whose dump carries the context in
`params._meta`, so the caller's own object is never changed. (The HTTP client transports post each message in the
task of the transport: `_transport` moves the POST into the message's context.)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from types import FrameType, MappingProxyType
from typing import TYPE_CHECKING, Any

from mcp import types
from mcp.client.session import ClientSession
from mcp.server.lowlevel.server import Server
from mcp.server.session import InitializationState, ServerSession
from mcp.shared.exceptions import McpError
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.session import BaseSession, RequestResponder
from wrapt import ObjectProxy

from opentelemetry_instrumentation_mcp._conventions import UNKNOWN_EXCEPTION
from opentelemetry_instrumentation_mcp._guard import guarded, report
from opentelemetry_instrumentation_mcp._message import Message, SessionState, session_state
from opentelemetry_instrumentation_mcp._operation import Operation, carried_error_reader
from opentelemetry_instrumentation_mcp._patching import Target, argument
from opentelemetry_instrumentation_mcp._propagation import inject_into_params
from opentelemetry_instrumentation_mcp._transport import request_transport, session_transport
from opentelemetry_instrumentation_mcp._wrappers import Args, Kwargs, SdkAdapter, noting_client_transport

Session = BaseSession[Any, Any, Any, Any, Any]
Responder = RequestResponder[Any, Any]

_LOCAL_FAILURES = frozenset({408, types.CONNECTION_CLOSED})
"""Codes of the errors the 1.x SDK raises itself: a request timed out (HTTP's 408), the connection closed."""
_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})
_next_request_id = attrgetter("_request_id")
"""The id a session's `send_request`, called now, gives its request: its counter, which it takes as its first step
(a C call, no frame)."""


def _fields(model: object) -> Mapping[str, Any]:
    """The fields of a pydantic model, read without its attribute lookups (a lookup that fails costs pydantic an
    exception); none where it has none. An absent model is told apart first: a `getattr` that fails costs an
    exception even with a default."""
    fields = None if model is None else getattr(model, "__dict__", None)
    return fields if isinstance(fields, dict) else _NO_FIELDS


def _field(model: object, name: str) -> Any:
    """One field, read as `_fields` reads them, in one call: every message passes here."""
    fields = None if model is None else getattr(model, "__dict__", None)
    return fields.get(name) if isinstance(fields, dict) else None


def _root(model: Any) -> Any:
    """The request, notification or result a model holds: the union's member (`ClientRequest`, `ServerResult`...),
    or the model itself where it is a bare one (a `ReadResourceRequest`, as FastMCP hands the SDK). Read off its
    fields (as `_field` does, in this one call): an `isinstance` of pydantic's `RootModel` passes through `ABCMeta`,
    slow for every message."""
    fields = getattr(model, "__dict__", None)
    root = fields.get("root") if isinstance(fields, dict) else None
    return model if root is None else root


def _root_and_meta(model: Any) -> tuple[Any, object]:
    """A request's or notification's root (`_root`) and the keys of its `params.meta` beyond the SDK's declared ones,
    as the peer sent them (pydantic `extra="allow"`), read in one more call: every message passes here."""
    root = _root(model)
    fields = getattr(root, "__dict__", None)
    params = fields.get("params") if isinstance(fields, dict) else None
    fields = None if params is None else getattr(params, "__dict__", None)
    meta = fields.get("meta") if isinstance(fields, dict) else None
    return root, None if meta is None else getattr(meta, "model_extra", None)


def _http_request(metadata: object) -> Any:
    return metadata.request_context if isinstance(metadata, ServerMessageMetadata) else None


def _protocol_version(state: SessionState, http_request: Any) -> str | None:
    """The version negotiated on this session, else the one a streamable HTTP request declares."""
    version = state.protocol_version
    if version is None and http_request is not None:
        headers = getattr(http_request, "headers", None)
        version = headers.get("mcp-protocol-version") if headers is not None else None
    return version


def _bind_handle_message(message: object, session: Session, *args: Any, **kwargs: Any) -> tuple[object, Session]:
    return message, session


def _client(session: Session) -> bool:
    return not isinstance(session, ServerSession)


def _received_message(
    root: Any, session: Session, method: str, meta: object, *, request_id: object, http: Any
) -> Message:
    """A request or notification a side received (its model's `root`), with the HTTP request that carried it, if
    any."""
    params = _field(root, "params")
    state = session_state(session)
    version = None if method == "initialize" else _protocol_version(state, http)
    state.protocol_version = state.protocol_version or version  # for what the server sends on this session
    transport = (
        request_transport(http, state) if http is not None else session_transport(state, client=_client(session))
    )
    return Message.of(
        method,
        params,
        _fields(params),
        request_id=request_id,
        meta=meta,
        protocol_version=version,
        transport=transport,
        session=state,
    )


def _sent_message(root: Any, session: Session, method: str, meta: object) -> Message:
    """A request or notification a side sends, as the SDK's model (a request's id is read as it is sent)."""
    params = _field(root, "params")
    state = session_state(session)
    return Message.of(
        method,
        params,
        _fields(params),
        meta=meta,
        protocol_version=state.protocol_version,
        transport=session_transport(state, client=_client(session)),
        session=state,
    )


_NOTIFICATION_REQUESTS = "_opentelemetry_mcp_notification_requests"
"""The attribute of a server session that holds the HTTP requests of the notifications it received and has not
handled yet, by the notification's identity."""


def _noting_notification_request(wrapped: Any, instance: ServerSession, args: Args, kwargs: Kwargs) -> Any:
    """`ServerSession._received_notification(notification)`, in the session's receive loop: the HTTP request that
    carried the notification, which 1.x does not hand on, is kept for its handling."""
    guarded(
        "noting a notification's HTTP request",
        lambda: _note_notification_request(instance, argument(args, kwargs, 0, "notification")),
        None,
    )
    return wrapped(*args, **kwargs)


def _note_notification_request(session: ServerSession, notification: object) -> None:
    http = _http_request(_receive_loop_metadata())
    if http is not None:
        pending = getattr(session, _NOTIFICATION_REQUESTS, None)
        if pending is None:
            pending = {}
            setattr(session, _NOTIFICATION_REQUESTS, pending)
        pending[id(notification)] = http


def _receive_loop_metadata() -> object:
    """The metadata of the message the session's receive loop is handling: its local `message` (a `SessionMessage`),
    read off its frame, since the loop validates a notification into a new object without it and no hook sees
    both."""
    frame: FrameType | None = sys._getframe(1)
    for _ in range(8):
        if frame is None:
            return None
        if frame.f_code.co_name == "_receive_loop":
            return getattr(frame.f_locals.get("message"), "metadata", None)
        frame = frame.f_back
    return None


def _notification_request(session: Session, notification: object) -> Any:
    """The HTTP request that carried a notification the server session received, taken once."""
    pending = getattr(session, _NOTIFICATION_REQUESTS, None)
    return pending.pop(id(notification), None) if pending else None


@dataclass(slots=True)
class _Answering:
    """Stands in for a traced request's `RequestResponder.respond` (as an attribute of that one responder, for the
    length of its handling): records the answer, then responds."""

    respond: Callable[..., Any]
    operation: Operation

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        response = argument(args, kwargs, 0, "response")
        try:
            _record_answer(self.operation, response)
        except Exception as error:  # noqa: BLE001 - a fault of ours never reaches the host
            report("recording a response", error)
        return self.respond(*args, **kwargs)


def _record_answer(operation: Operation, response: object) -> None:
    if isinstance(response, types.ErrorData):
        operation.record_error_response(response.code, response.message)
        if response.code == 0:  # the SDK's answer to any exception a handler raised, which it keeps to itself
            operation.record_failure(UNKNOWN_EXCEPTION, response.message)
        return
    operation.record_result(response)


if TYPE_CHECKING:
    _Proxy = ObjectProxy[Any]
else:
    _Proxy = ObjectProxy  # wrapt 1.x proxies are not generic


class _CarryingContext(_Proxy):
    """The caller's request or notification, whose dump carries the given context fields in `params._meta`."""

    def __init__(self, message: Any, carrier: Mapping[str, object]) -> None:
        super().__init__(message)
        self._self_carrier = carrier

    def model_dump(self, *args: Any, **kwargs: Any) -> Any:
        data = self.__wrapped__.model_dump(*args, **kwargs)
        if not isinstance(data, dict):
            return data
        return guarded("injecting trace context", lambda: self._with_carrier(data), data)

    def _with_carrier(self, data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "params": inject_into_params(data.get("params"), self._self_carrier)}


def _inject(message: Message, args: Args, kwargs: Kwargs, carrier: Mapping[str, object]) -> tuple[Args, Kwargs]:
    """`send_request(request, ...)` / `send_notification(notification, ...)` with the message behind a proxy."""
    if args:
        return (_CarryingContext(args[0], carrier), *args[1:]), kwargs
    name = "request" if "request" in kwargs else "notification"
    return args, {**kwargs, name: _CarryingContext(kwargs[name], carrier)}


class Adapter(SdkAdapter):
    """The targets of mcp 1.x and how to read what passes them."""

    read_received_error = staticmethod(carried_error_reader(McpError, frozenset()))
    read_sent_error = staticmethod(carried_error_reader(McpError, _LOCAL_FAILURES))

    @staticmethod
    def read_fields(value: object, /) -> Mapping[str, Any]:
        """The fields of a result as 1.x holds it: its model's, inside a `ServerResult` / `ClientResult` or not."""
        return _fields(_root(value))

    def targets(self) -> list[Target]:
        wrappers = self._wrappers
        session_entered, session_exited = wrappers.timing_sessions(self._end_session)
        return [
            Target(
                "mcp.server.lowlevel.server",
                "Server._handle_message",
                wrappers.receiving(self._read_handled_by_server, self._handle_by_kind),
                why="every request but `initialize` and every notification a server handles, each in its own task",
                per_message=True,
            ),
            Target(
                "mcp.server.session",
                "ServerSession._received_request",
                wrappers.receiving(self._read_answered_by_session, self._handle_by_method),
                why="`initialize`, which it answers inline, and requests it refuses before initialization; reads "
                "`_initialization_state`",
                per_message=True,
            ),
            Target(
                "mcp.server.session",
                "ServerSession._received_notification",
                _noting_notification_request,
                why="every notification a server session receives, in its receive loop, which still holds the HTTP "
                "request that carried it (read off the loop's frame: its local `message`) and then drops it",
                per_message=True,
            ),
            Target(
                "mcp.client.session",
                "ClientSession._received_request",
                wrappers.receiving(self._read_client_request, self._handle_request),
                why="every request a client receives (sampling, elicitation, roots)",
                per_message=True,
            ),
            Target(
                "mcp.client.session",
                "ClientSession._received_notification",
                wrappers.receiving(self._read_client_notification),
                why="every notification a client receives (logs, progress, list changes)",
                per_message=True,
            ),
            Target(
                "mcp.shared.session",
                "BaseSession.send_request",
                wrappers.sending(partial(self._read_sent, "request"), _inject, request=True, next_id=_next_request_id),
                why="every request either side sends; reads `_request_id`, the id the SDK gives it",
                per_message=True,
            ),
            Target(
                "mcp.shared.session",
                "BaseSession.send_notification",
                wrappers.sending(partial(self._read_sent, "notification"), _inject, request=False),
                why="every notification either side sends",
                per_message=True,
            ),
            Target(
                "mcp.client.session",
                "ClientSession.__init__",
                noting_client_transport(lambda session: (session,)),
                why="the transport its task opened last",
            ),
            Target("mcp.shared.session", "BaseSession.__aenter__", session_entered, why="a session starts"),
            Target(
                "mcp.shared.session", "BaseSession.__aexit__", session_exited, why="a session ends, however it ends"
            ),
        ]

    def _read_request(self, responder: Responder, session: Session) -> Message | None:
        method = responder.request.root.method
        meta = responder.request_meta
        meta = None if meta is None else getattr(meta, "model_extra", None)  # its keys beyond the SDK's declared ones
        metadata = responder.message_metadata
        http = metadata.request_context if isinstance(metadata, ServerMessageMetadata) else None
        if not self._operations.traces_received(method, meta, http, session_state(session)):
            return None
        return _received_message(
            responder.request.root, session, method, meta, request_id=responder.request_id, http=http
        )

    def _read_notification(self, notification: Any, session: Session) -> Message | None:
        root, meta = _root_and_meta(notification)
        method = str(root.method)
        http = _notification_request(session, notification)
        if not self._operations.traces_received(method, meta, http, session_state(session)):
            return None
        return _received_message(root, session, method, meta, request_id=None, http=http)

    def _read_handled_by_server(self, server: Server[Any, Any], args: Args, kwargs: Kwargs) -> Message | None:
        """`Server._handle_message(message, session, ...)`: a request's responder or a notification."""
        message, session = args[:2] if len(args) >= 2 else _bind_handle_message(*args, **kwargs)  # the SDK's call first
        if isinstance(message, RequestResponder):
            return self._read_request(message, session)
        if isinstance(message, types.ClientNotification):
            return self._read_notification(message, session)
        return None

    def _read_answered_by_session(self, session: ServerSession, args: Args, kwargs: Kwargs) -> Message | None:
        """`ServerSession._received_request(responder)`: `initialize`, or a request the session may refuse, as it does
        before it is initialized. Once initialized it refuses nothing: those requests, and any with nothing to
        record, go as they are (`Server._handle_message` traces them)."""
        responder = args[0] if args else argument(args, kwargs, 0, "responder")
        if responder.request.root.method != "initialize" and (
            getattr(session, "_initialization_state", None) is InitializationState.Initialized
            or not self._operations.records()
        ):
            return None
        return self._read_request(responder, session)

    def _read_client_request(self, session: ClientSession, args: Args, kwargs: Kwargs) -> Message | None:
        return self._read_request(argument(args, kwargs, 0, "responder"), session)

    def _read_client_notification(self, session: ClientSession, args: Args, kwargs: Kwargs) -> Message | None:
        return self._read_notification(argument(args, kwargs, 0, "notification"), session)

    def _read_sent(self, kind: str, session: Session, args: Args, kwargs: Kwargs) -> Message | None:
        """`send_request(request, ...)` / `send_notification(notification, ...)`, `kind` naming the argument."""
        # `meta`: what the caller put in `_meta` by hand
        root, meta = _root_and_meta(args[0] if args else argument(args, kwargs, 0, kind))
        if not self._operations.traces_sent(meta):
            return None
        return _sent_message(root, session, str(root.method), meta)

    def _handle_by_kind(self, message: Message, wrapped: Any, args: Args, kwargs: Kwargs) -> Any:
        """A notification's handling returns nothing to read; a request's is answered through its responder."""
        if message.request_id is None:
            return self._wrappers.handle(message, wrapped, args, kwargs)
        return self._handle_request(message, wrapped, args, kwargs)

    def _handle_by_method(self, message: Message, wrapped: Any, args: Args, kwargs: Kwargs) -> Any:
        """`initialize` is answered inline; any other request here is one the session may refuse."""
        if message.method == "initialize":
            return self._handle_request(message, wrapped, args, kwargs)
        return self._watch_refusal(message, wrapped, args, kwargs)

    async def _handle_request(self, message: Message, wrapped: Any, args: Args, kwargs: Kwargs) -> Any:
        """Handle a request inside its SERVER operation, the operation reading the answer off its responder; the
        SDK answers a client's cancellation itself, and the handling then returns normally."""
        responder: Responder = args[0] if args else kwargs["responder" if "responder" in kwargs else "message"]
        with self._operations.start_server(message) as operation:
            responder.respond = _Answering(responder.respond, operation)  # type: ignore[method-assign]
            try:
                return await wrapped(*args, **kwargs)
            finally:
                del responder.respond
                try:
                    if responder.cancelled is True:
                        operation.record_cancelled()
                except Exception as error:  # noqa: BLE001
                    report("reading a cancellation", error)

    async def _watch_refusal(self, message: Message, wrapped: Any, args: Args, kwargs: Kwargs) -> Any:
        """A request before initialization: the SDK's receive loop answers one it refuses with -32602."""
        try:
            return await wrapped(*args, **kwargs)
        except Exception:
            with self._operations.start_server(message) as operation:
                operation.record_error_response(types.INVALID_PARAMS, "Invalid request parameters")
            raise

    def _end_session(self, session: Session, error: object) -> None:
        state = session_state(session)
        client = _client(session)
        network = session_transport(state, client=client).attributes
        self._wrappers.sessions.end(state, server=not client, network=network, error=error)
