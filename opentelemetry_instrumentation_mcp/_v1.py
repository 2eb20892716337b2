"""mcp 1.x: the low-level server's message handler, `initialize` in the server session, and responses.

`Server._handle_message` runs once per inbound request and notification (in its own task), except
`initialize`, which `ServerSession._received_request` answers inline in the receive loop. The outcome of a
request is what the SDK responds with, seen by wrapping `RequestResponder.respond`.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from mcp import types
from mcp.server.lowlevel.server import Server
from mcp.server.session import ServerSession
from mcp.shared.exceptions import McpError
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.session import RequestResponder
from opentelemetry import context as context_api
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap
from wrapt import wrap_function_wrapper

from opentelemetry_instrumentation_mcp._guard import guarded
from opentelemetry_instrumentation_mcp._http import http_transport
from opentelemetry_instrumentation_mcp._message import Message, Transport
from opentelemetry_instrumentation_mcp._operation import Handling, Operation, Telemetry
from opentelemetry_instrumentation_mcp._session import session_state
from opentelemetry_instrumentation_mcp._transport import network_attributes, stdio_transport

ServerResponder = RequestResponder[types.ClientRequest, types.ServerResult]

_UNKNOWN_EXCEPTION = "_OTHER"
"""`error.type` of a handler exception the 1.x SDK turned into a code-0 error, hiding its class."""


@dataclass(slots=True)
class _Responding:
    responder: object
    operation: Operation
    session: ServerSession


_responding: ContextVar[_Responding | None] = ContextVar("opentelemetry_mcp_responding", default=None)


def _error_code(exc: BaseException) -> tuple[int, str] | None:
    return (exc.error.code, exc.error.message) if isinstance(exc, McpError) else None


def _http_request(metadata: object) -> Any:
    return metadata.request_context if isinstance(metadata, ServerMessageMetadata) else None


def _request_transport(session: ServerSession, request: Any) -> Transport:
    """What a request's transport tells; the session keeps what its notifications will lack."""
    if request is None:
        return stdio_transport()
    transport = http_transport(request, context_api.get_current())
    state = session_state(session)
    state.network = network_attributes(transport.attributes)
    if transport.session_id is not None:
        state.session_id = transport.session_id
    return transport


def _protocol_version(session: ServerSession, request: Any) -> str | None:
    """The version negotiated on this session, else the one a streamable HTTP request declares."""
    version = session_state(session).protocol_version
    if version is None and request is not None:
        headers = getattr(request, "headers", None)
        version = headers.get("mcp-protocol-version") if headers is not None else None
    return version


def _meta_fields(meta: object) -> object:
    """The `_meta` keys beyond the SDK's declared ones, as the peer sent them (pydantic `extra="allow"`)."""
    return getattr(meta, "model_extra", None)


def _describe_request(responder: ServerResponder, session: ServerSession) -> Message:
    request = responder.request.root
    params = getattr(request, "params", None)
    http = _http_request(responder.message_metadata)
    return Message(
        request.method,
        request_id=responder.request_id,
        meta=_meta_fields(responder.request_meta),
        name=getattr(params, "name", None),
        uri=getattr(params, "uri", None),
        protocol_version=None if request.method == "initialize" else _protocol_version(session, http),
        transport=_request_transport(session, http),
        session=session_state(session),
    )


def _describe_notification(notification: types.ClientNotification, session: ServerSession) -> Message:
    """1.x drops a notification's transport metadata: what the session learned stands in for it."""
    root = notification.root
    params = getattr(root, "params", None)
    state = session_state(session)
    stdio = stdio_transport()
    return Message(
        root.method,
        meta=_meta_fields(getattr(params, "meta", None)),
        uri=getattr(params, "uri", None),
        protocol_version=state.protocol_version,
        transport=stdio if stdio.attributes else Transport(state.network),
        session=state,
    )


def _record_response(responding: _Responding, response: object) -> None:
    operation = responding.operation
    if isinstance(response, types.ErrorData):
        operation.error_response(response.code, response.message)
        if response.code == 0:  # the SDK's answer to any exception a handler raised
            operation.failed(_UNKNOWN_EXCEPTION, response.message)
        return
    result = getattr(response, "root", response)
    if isinstance(result, types.InitializeResult):
        version = str(result.protocolVersion)
        session_state(responding.session).protocol_version = version
        operation.set_protocol_version(version)
    elif isinstance(result, types.CallToolResult) and result.isError:
        operation.tool_error()


def _capture_response(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Wrapper of `RequestResponder.respond`: note the response of the request being traced."""
    responding = _responding.get()
    if responding is not None and responding.responder is instance:
        response = args[0] if args else kwargs.get("response")
        guarded("recording a response", lambda: _record_response(responding, response), None)
    return wrapped(*args, **kwargs)


def _bind_handle_message(
    message: object, session: ServerSession, *args: Any, **kwargs: Any
) -> tuple[object, ServerSession]:
    return message, session


def _bind_received_request(responder: ServerResponder) -> ServerResponder:
    return responder


class Patches:
    """The wrappers this package puts on mcp 1.x, and their removal."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry

    def apply(self) -> None:
        wrap_function_wrapper("mcp.server.lowlevel.server", "Server._handle_message", self._handle_message)
        wrap_function_wrapper("mcp.server.session", "ServerSession._received_request", self._received_request)
        wrap_function_wrapper("mcp.shared.session", "RequestResponder.respond", _capture_response)

    def remove(self) -> None:
        unwrap(Server, "_handle_message")
        unwrap(ServerSession, "_received_request")
        unwrap(RequestResponder, "respond")

    def _handling(self, describe: Any) -> Handling:
        return Handling(self._telemetry, describe, _error_code)

    async def _handle_message(
        self, wrapped: Any, instance: Server[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        bound = guarded("reading a message", lambda: _bind_handle_message(*args, **kwargs), None)
        if bound is None or not is_instrumentation_enabled():
            return await wrapped(*args, **kwargs)
        message, session = bound
        if isinstance(message, types.ClientNotification):
            with self._handling(lambda: _describe_notification(message, session)):
                return await wrapped(*args, **kwargs)
        if not isinstance(message, RequestResponder):
            return await wrapped(*args, **kwargs)
        return await self._respond_traced(message, session, wrapped, args, kwargs)

    async def _received_request(
        self, wrapped: Any, instance: ServerSession, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        responder = guarded("reading a request", lambda: _bind_received_request(*args, **kwargs), None)
        if responder is None or not is_instrumentation_enabled():
            return await wrapped(*args, **kwargs)
        if responder.request.root.method == "initialize":
            return await self._respond_traced(responder, instance, wrapped, args, kwargs)
        try:
            return await wrapped(*args, **kwargs)
        except Exception:
            # the SDK's receive loop answers a request it refused before initialization with -32602
            with self._handling(lambda: _describe_request(responder, instance)) as operation:
                if operation is not None:
                    operation.error_response(types.INVALID_PARAMS, "Invalid request parameters")
            raise

    async def _respond_traced(
        self, responder: ServerResponder, session: ServerSession, wrapped: Any, args: Any, kwargs: Any
    ) -> Any:
        with self._handling(lambda: _describe_request(responder, session)) as operation:
            if operation is None:
                return await wrapped(*args, **kwargs)
            token = _responding.set(_Responding(responder, operation, session))
            try:
                return await wrapped(*args, **kwargs)
            finally:
                _responding.reset(token)
