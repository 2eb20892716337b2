"""Which transport a message travels on, and what it tells: network attributes, the HTTP request's trace context,
the session id. The SDK's transports tell it as they start; the same holds for both SDK generations.

Server side: `stdio_server()` is wrapped (where the SDK defines it and where its own modules bound the name) so
that its body runs with a context variable set; the mark is set before the SDK's context is entered, so the tasks
the SDK spawns there carry it too. The HTTP transports hand messages to the session's own task, away from the
request's task: a wrapper on their request entry points notes the request's context (its HTTP server span, when
an ASGI instrumentation made one) and the transport's session id in the ASGI scope, which travels with the message.

Client side: user code imports `stdio_client` and the HTTP clients by name, often before instrumenting, so their
entry points cannot be relied on. Steps every client transport takes inside, which the SDK looks up at run time
(spawning the process, creating the `StreamableHTTPTransport`, opening the SSE stream), note the transport in a
context variable of the task that opens it; the `ClientSession` created next takes it.

Each SDK context manager whose exit ends a server's sessions (`stdio_server()`, the streamable HTTP session
manager's `run()`, an SSE connection) flushes the providers as it exits.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from contextlib import suppress
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.semconv.attributes.client_attributes import CLIENT_ADDRESS, CLIENT_PORT
from opentelemetry.semconv.attributes.network_attributes import (
    NETWORK_PROTOCOL_NAME,
    NETWORK_PROTOCOL_VERSION,
    NETWORK_TRANSPORT,
    NetworkTransportValues,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT

from opentelemetry_instrumentation_mcp._console import warn_on_stdio
from opentelemetry_instrumentation_mcp._guard import guarded, report
from opentelemetry_instrumentation_mcp._message import (
    NO_TRANSPORT,
    Attributes,
    ClientTransport,
    SessionState,
    Transport,
)
from opentelemetry_instrumentation_mcp._otel_private import current_context
from opentelemetry_instrumentation_mcp._patching import Target, Wrapper, argument
from opentelemetry_instrumentation_mcp._propagation import carrier_for, extract, extract_from_http_headers, has_span

_PIPE: Attributes = {NETWORK_TRANSPORT: NetworkTransportValues.PIPE.value}
_STDIO = Transport(_PIPE)
_TCP = NetworkTransportValues.TCP.value
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCOPE_KEY = "opentelemetry_instrumentation_mcp.request"

_serving_stdio: ContextVar[bool] = ContextVar("opentelemetry_mcp_serving_stdio", default=False)
_opened: ContextVar[ClientTransport | None] = ContextVar("opentelemetry_mcp_opened_transport", default=None)


def session_transport(state: SessionState, *, client: bool) -> Transport:
    """The transport of a session's messages that carry none of their own: what a side sends, and what the mcp 1.x
    server receives as notifications (1.x drops their HTTP request). Inside the SDK's stdio server it is the pipe;
    in memory there is none."""
    if client:
        opened = state.client
        return opened.transport() if opened is not None else NO_TRANSPORT
    if _serving_stdio.get():
        return _STDIO
    if not state.network and state.session_id is None:
        return NO_TRANSPORT
    return Transport(state.network, session_id=state.session_id)


def request_transport(request: Any, state: SessionState) -> Transport:
    """What the HTTP request that carried a message tells (in the task that received it); the session keeps its
    network facts and id for the messages that will arrive without them."""
    transport = _http_transport(request, current_context(), state)
    state.session_id = transport.session_id or state.session_id
    return transport


def take_client_transport() -> ClientTransport | None:
    """The client transport this task opened last, for the `ClientSession` being created; no later one gets it."""
    opened = _opened.get()
    if opened is not None:
        _opened.set(None)
    return opened


@dataclass(frozen=True, slots=True)
class _Received:
    """What the server transport's request entry noted in the ASGI scope."""

    context: Context
    session_id: str | None


def _http_transport(request: Any, ambient: Context, state: SessionState) -> Transport:
    """What a Starlette `Request` tells; `ambient` stands in for the request's context where none was noted."""
    scope = getattr(request, "scope", None)
    if type(scope) is not dict and not isinstance(scope, Mapping):  # Starlette's is a dict: an ABC's check is slow
        state.network, state.peer = {}, None
        return NO_TRANSPORT
    received = scope.get(_SCOPE_KEY)
    request_context = received.context if isinstance(received, _Received) else ambient
    sent = extract_from_http_headers(getattr(request, "headers", None), scope.get("headers"))
    return Transport(
        attributes=_peer_attributes(scope, state),
        context=request_context if has_span(request_context) else sent,
        sent_context=sent,
        session_id=received.session_id if isinstance(received, _Received) else None,
    )


def _peer_attributes(scope: Mapping[str, Any], state: SessionState) -> Attributes:
    """The network and client attributes of an HTTP request, read anew only when the session's peer changes its HTTP
    version or address; the session keeps the network ones for the messages that arrive without a request."""
    peer = version, client = scope.get("http_version"), scope.get("client")
    if peer == state.peer:
        return state.peer_attributes
    attributes: Attributes = {NETWORK_TRANSPORT: _TCP, NETWORK_PROTOCOL_NAME: "http"}
    if isinstance(version, str):
        attributes[NETWORK_PROTOCOL_VERSION] = version
    if isinstance(client, (tuple, list)) and len(client) == 2:
        host, port = client
        if isinstance(host, str):
            attributes[CLIENT_ADDRESS] = host
        if isinstance(port, int):
            attributes[CLIENT_PORT] = port
    state.peer, state.peer_attributes = peer, attributes
    state.network = {key: value for key, value in attributes.items() if key.startswith("network.")}
    return attributes


def _url_attributes(url: object) -> Attributes:
    attributes: Attributes = {NETWORK_TRANSPORT: _TCP}
    if isinstance(url, str):
        with suppress(ValueError):
            parts = urlsplit(url)
            if parts.hostname:
                attributes[SERVER_ADDRESS] = parts.hostname
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
            if port is not None:
                attributes[SERVER_PORT] = port
    return attributes


def _note_request(scope: object, session_id: object) -> None:
    if type(scope) is dict or isinstance(scope, MutableMapping):
        scope[_SCOPE_KEY] = _Received(current_context(), session_id if isinstance(session_id, str) else None)


def _noting_streamable_http_request(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`StreamableHTTPServerTransport.handle_request(scope, ...)`: the request's context and the session's id."""
    try:
        _note_request(argument(args, kwargs, 0, "scope"), getattr(instance, "mcp_session_id", None))
    except Exception as error:  # noqa: BLE001 - a fault of ours never reaches the host
        report("noting an HTTP request", error)
    return wrapped(*args, **kwargs)


def _noting_sse_post(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`SseServerTransport.handle_post_message(scope, ...)`: the request's context and the `session_id` it names."""
    guarded("noting an HTTP request", lambda: _note_sse_post(argument(args, kwargs, 0, "scope")), None)
    return wrapped(*args, **kwargs)


def _note_sse_post(scope: Any) -> None:
    query = scope.get("query_string", b"") if isinstance(scope, Mapping) else b""
    session_ids = parse_qs(query.decode("latin-1")).get("session_id") if isinstance(query, bytes) else None
    _note_request(scope, session_ids[0] if session_ids else None)


class _FlushingAtExit:
    """One of the SDK's async context managers whose exit ends a server's sessions: the providers are flushed after
    it, so that a server stopped right after (its client kills it, uvicorn re-raises SIGTERM) loses nothing. The
    body of `stdio_server()` runs marked as served over a pipe."""

    def __init__(self, manager: Any, flush: Callable[[], Awaitable[None]], *, stdio: bool) -> None:
        self._manager = manager
        self._flush = flush
        self._stdio = stdio
        self._token: Token[bool] | None = None

    async def __aenter__(self) -> Any:
        if self._stdio:
            self._token = _serving_stdio.set(True)
        return await self._manager.__aenter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        try:
            return bool(await self._manager.__aexit__(exc_type, exc, tb))
        finally:
            if self._token is not None:
                with suppress(ValueError):  # exited in another context than it was entered in
                    _serving_stdio.reset(self._token)
            try:
                await self._flush()
            except Exception as error:  # noqa: BLE001 - a fault of ours never reaches the host
                report("flushing the providers", error)


def _flushing_at_exit(flush: Callable[[], Awaitable[None]], *, stdio: bool = False) -> Wrapper:
    """A wrapper of a function returning one of the SDK's server context managers: see `_FlushingAtExit`."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _FlushingAtExit:
        if stdio:
            guarded("checking the exporters", warn_on_stdio, None)
        return _FlushingAtExit(wrapped(*args, **kwargs), flush, stdio=stdio)

    return wrapper


_posted_context: ContextVar[Context | None] = ContextVar("opentelemetry_mcp_posted_context", default=None)
"""While a client transport posts one message: the context that message carries, for the POST's headers."""


def _streamable_http_posted_params(args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    """`StreamableHTTPTransport._handle_post_request(ctx)`: the params of the message it posts (a `JSONRPCMessage`
    on 1.x, whose `root` is the message; the message itself on 2.x)."""
    message = argument(args, kwargs, 0, "ctx").session_message.message
    inner = vars(message).get("root", message)  # read off the models' fields: a `getattr` that fails costs more
    return vars(inner).get("params")


def _sse_posted_params(args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    """`request_within_origin(client, "POST", url, json=...)` of the SSE client: the params of the message it posts."""
    body = kwargs.get("json") if argument(args, kwargs, 1, "method") == "POST" else None
    return body.get("params") if isinstance(body, Mapping) else None


def _posted_message_context(params: object) -> Context | None:
    """The context a posted message's `params._meta` carries: what its CLIENT operation put there."""
    return extract(params.get("_meta") if isinstance(params, Mapping) else None, Context())


def _posting_in_message_context(
    params_of: Callable[[tuple[Any, ...], dict[str, Any]], object], *, headers: bool, headers_argument: bool
) -> Wrapper:
    """A wrapper of a client transport's step that posts one message: the POST runs in the context the message
    carries (mcp 1.x posts in the transport's own task, opened once for the session), so that an instrumented HTTP
    client's span nests under the message's CLIENT span; and, with `headers`, its headers carry that context, through
    the transport's headers method (`_adding_context_headers`) or, with `headers_argument`, its `headers=`."""

    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        context = guarded("reading a message's context", lambda: _posted_message_context(params_of(args, kwargs)), None)
        if context is None:
            return await wrapped(*args, **kwargs)
        if headers and headers_argument:
            kwargs = guarded("adding trace context headers", lambda: _with_headers(kwargs, context), kwargs)
        current = trace.get_current_span().get_span_context().span_id
        token = None if current == _span_id(context) else context_api.attach(context)
        posting = _posted_context.set(context) if headers and not headers_argument else None
        try:
            return await wrapped(*args, **kwargs)
        finally:
            if posting is not None:
                _posted_context.reset(posting)
            if token is not None:
                context_api.detach(token)

    return wrapper


def _span_id(context: Context) -> int:
    return trace.get_current_span(context).get_span_context().span_id


def _with_headers(kwargs: dict[str, Any], context: Context) -> dict[str, Any]:
    return {**kwargs, "headers": {**(kwargs.get("headers") or {}), **(carrier_for(context) or {})}}


def _adding_context_headers(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The streamable HTTP client transport's headers method: for the POST of a message that carries a context,
    the headers carry it too, as the propagators write it (an instrumented HTTP client's own span, where one is
    active, writes its own over them). The session's other requests (its GET stream, its DELETE) are unchanged."""
    headers = wrapped(*args, **kwargs)
    context = _posted_context.get()
    if context is not None and isinstance(headers, dict):
        guarded("adding trace context headers", lambda: headers.update(carrier_for(context) or {}), None)
    return headers


def _noting_client_transport(transport: Callable[[tuple[Any, ...]], ClientTransport]) -> Wrapper:
    """A wrapper of a step of a client transport: notes the transport for the next session."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        guarded("noting a client transport", lambda: _opened.set(transport(args)), None)
        return wrapped(*args, **kwargs)

    return wrapper


def _noting_streamable_http_client(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """`StreamableHTTPTransport.__init__`: the transport knows its URL, and later its session id."""
    wrapped(*args, **kwargs)
    guarded(
        "noting a client transport",
        lambda: _opened.set(ClientTransport(_url_attributes(getattr(instance, "url", None)), http=instance)),
        None,
    )


_STDIO_SERVER = ("mcp.server.stdio", "stdio_server")
_STDIO_SERVER_REEXPORTS = (
    "mcp",
    "mcp.server.lowlevel.server",
    "mcp.server.fastmcp.server",
    "mcp.server.mcpserver.server",
)
"""Modules of the SDK that bind `stdio_server` by name; patched too when already imported."""

_CLIENT_STEPS = (
    Target(
        "mcp.client.stdio",
        "_create_platform_compatible_process",
        _noting_client_transport(lambda args: ClientTransport(_PIPE)),
        why="spawns a stdio server; `stdio_client` itself is imported by name before instrumenting",
    ),
    Target(
        "mcp.client.streamable_http",
        "StreamableHTTPTransport.__init__",
        _noting_streamable_http_client,
        why="its `url`, and its `session_id` once the server assigns one, are the client's only record of either",
    ),
    Target(
        "mcp.client.sse",
        "aconnect_sse",
        _noting_client_transport(lambda args: ClientTransport(_url_attributes(args[2]))),
        optional=True,
        why="the SSE stream's GET names the URL: `aconnect_sse(client, method, url)` in older 1.x releases",
    ),
    Target(
        "mcp.client.sse",
        "sse_within_origin",
        _noting_client_transport(lambda args: ClientTransport(_url_attributes(args[1]))),
        optional=True,
        why="... and `sse_within_origin(client, url)` in newer ones and 2.x",
    ),
)


def _posting_targets(headers: bool) -> list[Target]:
    """The client transports' steps that post one message, and, with `headers`, their headers methods (named three
    ways across 1.x releases)."""
    headers_methods = ("_prepare_headers", "_prepare_request_headers", "_update_headers_with_session")
    return [
        Target(
            "mcp.client.streamable_http",
            "StreamableHTTPTransport._handle_post_request",
            _posting_in_message_context(_streamable_http_posted_params, headers=headers, headers_argument=False),
            why="posts one message: on 1.x in the task of the transport, not of the message",
            per_message=True,
        ),
        Target(
            "mcp.client.sse",
            "request_within_origin",
            _posting_in_message_context(_sse_posted_params, headers=headers, headers_argument=True),
            optional=True,
            why="posts one message of the SSE client (releases that post through it); its other requests pass as "
            "they are",
            per_message=True,
        ),
        *(
            Target(
                "mcp.client.streamable_http",
                f"StreamableHTTPTransport.{method}",
                _adding_context_headers,
                optional=True,
                why="builds the headers of every request of the transport; only the POST of a message gets ours",
                per_message=True,
            )
            for method in headers_methods
            if headers
        ),
    ]


def transport_targets(flush: Callable[[], Awaitable[None]], *, inject_http_headers: bool) -> list[Target]:
    """What tells the transport of a message, on both sides and both SDK generations, what moves the POST of a
    message into its context (and, with `inject_http_headers`, adds that context to the POST's headers), and what
    ends a server's sessions."""
    module_name, name = _STDIO_SERVER
    original = getattr(importlib.import_module(module_name), name, None)
    reexports = [
        binder
        for binder in _STDIO_SERVER_REEXPORTS
        if original is not None and getattr(sys.modules.get(binder), name, None) is original
    ]
    stdio = _flushing_at_exit(flush, stdio=True)
    why = "its body is the stdio server's: the pipe mark for its messages, the flush as its session ends"
    return [
        Target(module_name, name, stdio, why=why),
        *(Target(binder, name, stdio, optional=True, why=f"{why} (bound by name here)") for binder in reexports),
        Target(
            "mcp.server.streamable_http",
            "StreamableHTTPServerTransport.handle_request",
            _noting_streamable_http_request,
            why="the request's task, before the message leaves for the session's: its context and the session id",
            per_message=True,
        ),
        Target(
            "mcp.server.sse",
            "SseServerTransport.handle_post_message",
            _noting_sse_post,
            why="the POST's task, before the message leaves for the session's: its context and the session id",
            per_message=True,
        ),
        Target(
            "mcp.server.streamable_http_manager",
            "StreamableHTTPSessionManager.run",
            _flushing_at_exit(flush),
            why="the app's shutdown (uvicorn on SIGTERM) leaves it: the flush before the process dies",
        ),
        Target(
            "mcp.server.sse",
            "SseServerTransport.connect_sse",
            _flushing_at_exit(flush),
            why="an SSE session ends with it: the flush",
        ),
        *_CLIENT_STEPS,
        *_posting_targets(inject_http_headers),
    ]
