"""What the HTTP request that carried a message tells: peer attributes, trace context, session id.

The SDK's HTTP transports hand messages to the session's own task, away from the request's task; a wrapper
on their request entry points notes the request's context (its HTTP server span, when an ASGI instrumentation
made one) and the transport's session id in the ASGI scope, which travels with the message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from opentelemetry import context as context_api
from opentelemetry.context import Context
from opentelemetry.semconv.attributes.client_attributes import CLIENT_ADDRESS, CLIENT_PORT
from opentelemetry.semconv.attributes.network_attributes import (
    NETWORK_PROTOCOL_NAME,
    NETWORK_PROTOCOL_VERSION,
    NETWORK_TRANSPORT,
    NetworkTransportValues,
)

from opentelemetry_instrumentation_mcp._guard import guarded
from opentelemetry_instrumentation_mcp._message import NO_TRANSPORT, Transport
from opentelemetry_instrumentation_mcp._patching import Target
from opentelemetry_instrumentation_mcp._propagation import extract, has_span
from opentelemetry_instrumentation_mcp._transport import Attributes, ending

_SCOPE_KEY = "opentelemetry_instrumentation_mcp.request"


@dataclass(frozen=True, slots=True)
class _Received:
    context: Context
    session_id: str | None


def http_transport(request: Any, ambient: Context) -> Transport:
    """What a Starlette `Request` tells; `ambient` stands in for the request's context where none was noted."""
    scope = getattr(request, "scope", None)
    if not isinstance(scope, Mapping):
        return NO_TRANSPORT
    received = scope.get(_SCOPE_KEY)
    request_context = received.context if isinstance(received, _Received) else ambient
    sent = extract(getattr(request, "headers", None), Context())
    return Transport(
        attributes=_attributes(scope),
        context=request_context if has_span(request_context) else sent,
        sent_context=sent,
        session_id=received.session_id if isinstance(received, _Received) else None,
    )


def _attributes(scope: Mapping[str, Any]) -> Attributes:
    attributes: Attributes = {NETWORK_TRANSPORT: NetworkTransportValues.TCP.value, NETWORK_PROTOCOL_NAME: "http"}
    version = scope.get("http_version")
    if isinstance(version, str):
        attributes[NETWORK_PROTOCOL_VERSION] = version
    client = scope.get("client")
    if isinstance(client, (tuple, list)) and len(client) == 2:
        host, port = client
        if isinstance(host, str):
            attributes[CLIENT_ADDRESS] = host
        if isinstance(port, int):
            attributes[CLIENT_PORT] = port
    return attributes


def _note(scope: object, session_id: str | None) -> None:
    if isinstance(scope, MutableMapping):
        scope[_SCOPE_KEY] = _Received(context_api.get_current(), session_id)


def _streamable_http_request(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    guarded("noting an HTTP request", lambda: _note_streamable_http(instance, args, kwargs), None)
    return wrapped(*args, **kwargs)


def _note_streamable_http(transport: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    session_id = getattr(transport, "mcp_session_id", None)
    _note(args[0] if args else kwargs.get("scope"), session_id if isinstance(session_id, str) else None)


def _sse_post(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    guarded("noting an HTTP request", lambda: _note_sse(args, kwargs), None)
    return wrapped(*args, **kwargs)


def _note_sse(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    scope = args[0] if args else kwargs.get("scope")
    query = scope.get("query_string", b"") if isinstance(scope, Mapping) else b""
    session_ids = parse_qs(query.decode("latin-1")).get("session_id") if isinstance(query, bytes) else None
    _note(scope, session_ids[0] if session_ids else None)


def http_targets(flush: Callable[[], None]) -> list[Target]:
    """The request entry points of the SDK's streamable HTTP and SSE server transports, and what ends their
    sessions: the session manager leaving `run()` (the app's shutdown), an SSE stream."""
    return [
        Target("mcp.server.streamable_http", "StreamableHTTPServerTransport.handle_request", _streamable_http_request),
        Target("mcp.server.sse", "SseServerTransport.handle_post_message", _sse_post),
        Target("mcp.server.streamable_http_manager", "StreamableHTTPSessionManager.run", ending(flush)),
        Target("mcp.server.sse", "SseServerTransport.connect_sse", ending(flush)),
    ]
