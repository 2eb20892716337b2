"""mcp 1.x: `BaseSession`, shared by both sides, and the handlers of what each side receives.

Outbound: every request and notification, from either side, passes `BaseSession.send_request` /
`send_notification`, which dump the message to JSON; the message is handed to them behind a proxy whose dump
carries the CLIENT span's context in `params._meta`, so the caller's own object is never changed. The HTTP
client transports post each message in the context its `_meta` carries (2.x does so itself).

Inbound: the low-level `Server._handle_message` runs once per request and notification a server receives (in
its own task), except `initialize`, which `ServerSession._received_request` answers inline in the receive
loop; a client's `ClientSession._received_request` / `_received_notification` handle what the server sends.
The outcome of a request is what the SDK responds with, seen through the `respond` of its traced responder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from mcp import types
from mcp.client.session import ClientSession
from mcp.server.lowlevel.server import Server
from mcp.server.session import InitializationState, ServerSession
from mcp.shared.exceptions import McpError
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.session import BaseSession, RequestResponder
from opentelemetry import context as context_api
from opentelemetry.context import Context
from pydantic import RootModel
from wrapt import ObjectProxy

from opentelemetry_instrumentation_mcp._guard import guarded, report
from opentelemetry_instrumentation_mcp._http import http_transport
from opentelemetry_instrumentation_mcp._message import NO_TRANSPORT, Message, Transport
from opentelemetry_instrumentation_mcp._operation import Operation, Telemetry, Untraced
from opentelemetry_instrumentation_mcp._patching import Target
from opentelemetry_instrumentation_mcp._propagation import carrier, extract, passes_nothing, sends_nothing, with_carrier
from opentelemetry_instrumentation_mcp._session import SessionState, session_state
from opentelemetry_instrumentation_mcp._transport import (
    client_transport,
    network_attributes,
    stdio_transport,
    take_client_transport,
)

Session = BaseSession[Any, Any, Any, Any, Any]
Responder = RequestResponder[Any, Any]

_UNKNOWN_EXCEPTION = "_OTHER"
"""`error.type` of a handler exception the 1.x SDK turned into a code-0 error, hiding its class."""
_LOCAL_FAILURES = frozenset({408, types.CONNECTION_CLOSED})
"""Codes of the errors the 1.x SDK raises itself: a request timed out (HTTP's 408), the connection closed."""


@dataclass(slots=True)
class _Responding:
    """Stands in for a traced request's `RequestResponder.respond` (as an attribute of that one responder, for the
    length of its handling): notes the response, then responds."""

    respond: Callable[..., Any]
    operation: Operation
    session: Session

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        response = args[0] if args else kwargs.get("response")
        try:
            _record_response(self.operation, self.session, response)
        except Exception as error:  # noqa: BLE001
            report("recording a response", error)
        return self.respond(*args, **kwargs)


def _received_error_code(exc: BaseException) -> tuple[int, str] | None:
    return (exc.error.code, exc.error.message) if isinstance(exc, McpError) else None


def _sent_error_code(exc: BaseException) -> tuple[int, str] | None:
    """The peer's JSON-RPC error; the SDK's own timeouts and closed connections count as exceptions."""
    if isinstance(exc, McpError) and exc.error.code not in _LOCAL_FAILURES:
        return exc.error.code, exc.error.message
    return None


def _http_request(metadata: object) -> Any:
    return metadata.request_context if isinstance(metadata, ServerMessageMetadata) else None


def _session_transport(session: Session, state: SessionState) -> Transport:
    """The transport of a session's messages that carry none of their own (1.x drops it on notifications)."""
    if not isinstance(session, ServerSession):
        return client_transport(state)
    stdio = stdio_transport()
    if stdio.attributes:
        return stdio
    if not state.network and state.session_id is None:
        return NO_TRANSPORT
    return Transport(state.network, session_id=state.session_id)


def _request_transport(session: Session, state: SessionState, request: Any) -> Transport:
    """What a request's transport tells; the session keeps what its notifications will lack."""
    if request is None:
        return _session_transport(session, state)
    transport = http_transport(request, context_api.get_current())
    state.network = network_attributes(transport.attributes)
    if transport.session_id is not None:
        state.session_id = transport.session_id
    return transport


def _protocol_version(state: SessionState, request: Any) -> str | None:
    """The version negotiated on this session, else the one a streamable HTTP request declares."""
    version = state.protocol_version
    if version is None and request is not None:
        headers = getattr(request, "headers", None)
        version = headers.get("mcp-protocol-version") if headers is not None else None
    return version


def _meta_fields(meta: object) -> object:
    """The `_meta` keys beyond the SDK's declared ones, as the peer sent them (pydantic `extra="allow"`)."""
    return getattr(meta, "model_extra", None)


_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})


def _fields(model: object) -> Mapping[str, Any]:
    """The fields of a pydantic model, read without its attribute lookups (a lookup that fails costs pydantic an
    exception); none where it has none."""
    fields = getattr(model, "__dict__", None)
    return fields if isinstance(fields, dict) else _NO_FIELDS


def _field(model: object, name: str) -> Any:
    """One field, read as `_fields` reads them (in one call: every message passes here)."""
    fields = getattr(model, "__dict__", None)
    return fields.get(name) if isinstance(fields, dict) else None


def _describe_request(responder: Responder, session: Session) -> Message:
    request = responder.request.root
    params = _field(request, "params")
    fields = _fields(params)
    http = _http_request(responder.message_metadata)
    state = session_state(session)
    version = None if request.method == "initialize" else _protocol_version(state, http)
    state.protocol_version = state.protocol_version or version  # for what the server sends on this session
    return Message(
        request.method,
        request_id=responder.request_id,
        meta=_meta_fields(responder.request_meta),
        name=fields.get("name"),
        uri=fields.get("uri"),
        arguments=fields.get("arguments"),
        params=params,
        protocol_version=version,
        transport=_request_transport(session, state, http),
        session=state,
    )


def _describe_model(message: Any, session: Session, request_id: object = None) -> Message:
    """A message held as the SDK's model, with no transport metadata of its own: one the session sends, or a
    notification it received (1.x drops a notification's metadata)."""
    root = _root(message)
    params = _field(root, "params")
    fields = _fields(params)
    state = session_state(session)
    return Message(
        root.method,
        request_id=request_id,
        meta=_meta_fields(fields.get("meta")),
        name=fields.get("name"),
        uri=fields.get("uri"),
        arguments=fields.get("arguments"),
        params=params,
        protocol_version=state.protocol_version,
        transport=_session_transport(session, state),
        session=state,
    )


def _record_result(operation: Operation, session: Session, result: object) -> None:
    """A request's result, in whichever direction it went."""
    if isinstance(result, RootModel):  # `ServerResult` / `ClientResult` (a plain model raises on a `.root` lookup)
        result = result.root
    operation.result(result)
    if isinstance(result, types.InitializeResult):
        version = str(result.protocolVersion)
        state = session_state(session)
        state.protocol_version, state.initialized = version, True
        operation.set_protocol_version(version)
    elif isinstance(result, types.CallToolResult) and result.isError:
        operation.tool_error()


def _record_response(operation: Operation, session: Session, response: object) -> None:
    if isinstance(response, types.ErrorData):
        operation.error_response(response.code, response.message)
        if response.code == 0:  # the SDK's answer to any exception a handler raised
            operation.failed(_UNKNOWN_EXCEPTION, response.message)
        return
    _record_result(operation, session, response)


def _with_meta(data: dict[str, Any], sent: Mapping[str, object]) -> dict[str, Any]:
    return {**data, "params": with_carrier(data.get("params"), sent)}


if TYPE_CHECKING:
    _Proxy = ObjectProxy[Any]
else:
    _Proxy = ObjectProxy  # wrapt 1.x proxies are not generic


class _Injecting(_Proxy):
    """The caller's request or notification, whose dump carries the CLIENT span's context in `_meta`."""

    def __init__(self, message: Any, sent: Mapping[str, object]) -> None:
        super().__init__(message)
        self._self_sent = sent

    def model_dump(self, *args: Any, **kwargs: Any) -> Any:
        data = self.__wrapped__.model_dump(*args, **kwargs)
        if not isinstance(data, dict):
            return data
        return guarded("injecting trace context", lambda: _with_meta(data, self._self_sent), data)


def _injecting(message: Any, operation: Operation) -> Any:
    """What to hand the SDK to send: the caller's message, behind an `_Injecting` proxy if there is context to send."""
    sent = carrier(operation.context)
    return message if sent is None else _Injecting(message, sent)


def _client_created(wrapped: Any, instance: ClientSession, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """`ClientSession.__init__`: the session talks over the transport its task opened last."""
    wrapped(*args, **kwargs)
    guarded("noting a session's transport", lambda: _note_client(instance), None)


def _note_client(session: ClientSession) -> None:
    session_state(session).client = take_client_transport()


def _meta_context(params: object) -> Context | None:
    """The context a message's dumped `params._meta` carries: what its CLIENT span injected."""
    return extract(params.get("_meta") if isinstance(params, Mapping) else None, Context())


def _posted_params(args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    """`StreamableHTTPTransport._handle_post_request(ctx)`: the params of the message it posts."""
    return getattr(_first(args, kwargs, "ctx").session_message.message.root, "params", None)


def _sse_posted_params(args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    """`request_within_origin(client, "POST", url, json=...)` of the SSE client: the params of the message it posts."""
    body = kwargs.get("json")
    return body.get("params") if isinstance(body, Mapping) else None


def _in_message_context(params_of: Callable[[tuple[Any, ...], dict[str, Any]], object]) -> Any:
    """A wrapper of a client transport's step that posts one message (in the task of the transport, opened once
    for the session): the step runs in the context the message carries, so that an instrumented HTTP client's
    span nests under the message's CLIENT span, and its headers agree with `_meta`."""

    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        context = guarded("reading a message's context", lambda: _meta_context(params_of(args, kwargs)), None)
        if context is None:
            return await wrapped(*args, **kwargs)
        token = context_api.attach(context)
        try:
            return await wrapped(*args, **kwargs)
        finally:
            context_api.detach(token)

    return wrapper


def _first(args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> Any:
    return args[0] if args else kwargs[name]


def _root(model: Any) -> Any:
    """The request or notification a model holds: the union's member (`ClientRequest`, `ServerNotification`...),
    or the model itself where the caller hands the SDK a bare one (`ReadResourceRequest`, as FastMCP does)."""
    return model.root if isinstance(model, RootModel) else model


def _outgoing(model: Any) -> tuple[str, object]:
    """The method of a message the caller hands the SDK, in either shape, and the `_meta` fields it gave by hand."""
    root = _root(model)
    return str(root.method), _meta_fields(_field(_field(root, "params"), "meta"))


def _replace_first(args: tuple[Any, ...], kwargs: dict[str, Any], name: str, value: object) -> tuple[Any, Any]:
    if args:
        return (value, *args[1:]), kwargs
    return args, {**kwargs, name: value}


class Patches:
    """The wrappers this package puts on mcp 1.x."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry

    def targets(self) -> list[Target]:
        entered, exited = self._telemetry.session_wrappers(self._session_ended)
        return [
            Target("mcp.server.lowlevel.server", "Server._handle_message", self._handle_message),
            Target("mcp.server.session", "ServerSession._received_request", self._server_received),
            Target("mcp.client.session", "ClientSession.__init__", _client_created),
            Target("mcp.client.session", "ClientSession._received_request", self._client_received),
            Target("mcp.client.session", "ClientSession._received_notification", self._notified),
            Target("mcp.shared.session", "BaseSession.send_request", partial(self._send, "request")),
            Target("mcp.shared.session", "BaseSession.send_notification", partial(self._send, "notification")),
            Target("mcp.shared.session", "BaseSession.__aenter__", entered),
            Target("mcp.shared.session", "BaseSession.__aexit__", exited),
            # the client transports' steps that post a message; a release that lacks one posts from elsewhere
            Target(
                "mcp.client.streamable_http",
                "StreamableHTTPTransport._handle_post_request",
                _in_message_context(_posted_params),
                optional=True,
            ),
            Target("mcp.client.sse", "request_within_origin", _in_message_context(_sse_posted_params), optional=True),
        ]

    def _session_ended(self, session: Session, error: object) -> None:
        state = session_state(session)
        self._telemetry.session_ended(
            state,
            server=isinstance(session, ServerSession),
            network=_session_transport(session, state).attributes,
            error=error,
        )

    def _handling(self, method: str, describe: Callable[[], Message]) -> Operation | Untraced:
        return self._telemetry.handling(method, describe, _received_error_code)

    def _handle_message(
        self, wrapped: Any, instance: Server[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        telemetry = self._telemetry
        try:
            message = _first(args, kwargs, "message")
            session = args[1] if len(args) > 1 else kwargs["session"]
            if isinstance(message, types.ClientNotification):
                root = message.root
                meta, http, method = _meta_fields(_field(_field(root, "params"), "meta")), None, str(root.method)
            elif isinstance(message, RequestResponder):
                meta, http = _meta_fields(message.request_meta), _http_request(message.message_metadata)
                method = message.request.root.method
            else:
                return wrapped(*args, **kwargs)
            # with nothing to record or pass on, suppressed or not, the handling runs as it is
            if not telemetry.recording() and passes_nothing(method, meta, http, session_state(session)):
                return wrapped(*args, **kwargs)
        except Exception as error:  # noqa: BLE001
            report("reading a message", error)
            return wrapped(*args, **kwargs)
        if not telemetry.enabled():
            return wrapped(*args, **kwargs)
        if isinstance(message, types.ClientNotification):
            return self._notification_handled(message, session, wrapped, args, kwargs)
        return self._respond_traced(message, session, wrapped, args, kwargs)

    async def _notification_handled(
        self, notification: Any, session: Session, wrapped: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        with self._handling(notification.root.method, lambda: _describe_model(notification, session)):
            return await wrapped(*args, **kwargs)

    def _server_received(
        self, wrapped: Any, instance: ServerSession, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        try:
            responder = _first(args, kwargs, "responder")
            method = responder.request.root.method
        except Exception as error:  # noqa: BLE001
            report("reading a request", error)
            return wrapped(*args, **kwargs)
        initialize = method == "initialize"
        # a refusal (below) has nothing to pass on, and an initialized session refuses nothing
        if not initialize and (
            not self._telemetry.recording()
            or getattr(instance, "_initialization_state", None) is InitializationState.Initialized
        ):
            return wrapped(*args, **kwargs)
        if not self._telemetry.enabled():
            return wrapped(*args, **kwargs)
        if initialize:
            return self._respond_traced(responder, instance, wrapped, args, kwargs)
        return self._refusal_traced(responder, instance, wrapped, args, kwargs)

    async def _refusal_traced(
        self, responder: Responder, session: ServerSession, wrapped: Any, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        try:
            return await wrapped(*args, **kwargs)
        except Exception:
            # the SDK's receive loop answers a request it refused before initialization with -32602
            method = responder.request.root.method
            with self._handling(method, lambda: _describe_request(responder, session)) as operation:
                if operation is not None:
                    operation.error_response(types.INVALID_PARAMS, "Invalid request parameters")
            raise

    def _client_received(
        self, wrapped: Any, instance: ClientSession, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        responder = guarded("reading a request", lambda: _first(args, kwargs, "responder"), None)
        if responder is None or not self._telemetry.enabled():
            return wrapped(*args, **kwargs)
        return self._respond_traced(responder, instance, wrapped, args, kwargs)

    def _notified(self, wrapped: Any, instance: ClientSession, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        notification = guarded("reading a notification", lambda: _first(args, kwargs, "notification"), None)
        if notification is None or not self._telemetry.enabled():
            return wrapped(*args, **kwargs)
        return self._notification_handled(notification, instance, wrapped, args, kwargs)

    async def _respond_traced(
        self, responder: Responder, session: Session, wrapped: Any, args: Any, kwargs: Any
    ) -> Any:
        method = responder.request.root.method
        with self._handling(method, lambda: _describe_request(responder, session)) as operation:
            if operation is None:
                return await wrapped(*args, **kwargs)
            # this responder's answer is noted on the way out (the class's `respond` is left alone)
            responder.respond = _Responding(responder.respond, operation, session)  # type: ignore[method-assign]
            try:
                return await wrapped(*args, **kwargs)
            finally:
                del responder.respond
                # the SDK answers a client's cancellation itself, and the handling returns normally
                try:
                    if responder.cancelled is True:
                        operation.cancelled()
                except Exception as error:  # noqa: BLE001
                    report("reading a cancellation", error)

    def _send(
        self, argument: str, wrapped: Any, instance: Session, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """`send_request(request, ...)` or `send_notification(notification, ...)`, named by `argument`; with nothing
        to record or send, the message goes as it is."""
        telemetry = self._telemetry
        try:
            message = _first(args, kwargs, argument)
            method, meta = _outgoing(message)
            if (not telemetry.recording() and sends_nothing(meta)) or not telemetry.enabled():
                return wrapped(*args, **kwargs)
            # `send_request` takes the session's next id as its first step: the id this request will have
            request_id = getattr(instance, "_request_id", None) if argument == "request" else None
        except Exception as error:  # noqa: BLE001
            report(f"reading a {argument}", error)
            return wrapped(*args, **kwargs)
        return self._sent(
            wrapped,
            instance,
            args,
            kwargs,
            argument=argument,
            message=message,
            method=method,
            meta=meta,
            request_id=request_id,
        )

    async def _sent(
        self,
        wrapped: Any,
        instance: Session,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        argument: str,
        message: Any,
        method: str,
        meta: object,
        request_id: object,
    ) -> Any:
        describe = lambda: _describe_model(message, instance, request_id)  # noqa: E731
        with self._telemetry.sending(method, describe, meta, _sent_error_code) as operation:
            if operation is None:
                return await wrapped(*args, **kwargs)
            try:
                args, kwargs = _replace_first(args, kwargs, argument, _injecting(message, operation))
            except Exception as error:  # noqa: BLE001
                report("injecting trace context", error)
            result = await wrapped(*args, **kwargs)
            if argument == "request":
                try:
                    _record_result(operation, instance, result)
                except Exception as error:  # noqa: BLE001
                    report("recording a result", error)
            return result
