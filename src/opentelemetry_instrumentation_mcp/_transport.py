"""Which transport a message travels on, told by the SDK's transports as they start.

Server side: `stdio_server()` is wrapped (where the SDK defines it and where its own modules bound the name)
so that its body runs with a context variable set; the mark is set before the SDK's context is entered, so
the tasks the SDK spawns there carry it too (mcp 2.x runs handlers in the context of the task that read the
message).

Client side: user code imports `stdio_client` and the HTTP clients by name, often before instrumenting, so
their entry points cannot be relied on. Steps every client transport takes inside, which the SDK looks up at
run time (spawning the process, creating the `StreamableHTTPTransport`, opening the SSE stream), note the
transport in a context variable of the task that opens it; the `ClientSession` created next takes it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from contextlib import suppress
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.semconv.attributes.network_attributes import NETWORK_TRANSPORT, NetworkTransportValues
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.util.types import AttributeValue

from opentelemetry_instrumentation_mcp._console import warn_on_stdio
from opentelemetry_instrumentation_mcp._guard import guarded
from opentelemetry_instrumentation_mcp._message import NO_TRANSPORT, Transport
from opentelemetry_instrumentation_mcp._patching import Target
from opentelemetry_instrumentation_mcp._providers import flushed
from opentelemetry_instrumentation_mcp._session import SessionState

Attributes = dict[str, AttributeValue]
Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]

_PIPE: Attributes = {NETWORK_TRANSPORT: NetworkTransportValues.PIPE.value}
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(slots=True)
class ClientTransport:
    """The transport a client session talks over."""

    attributes: Attributes
    http: Any = None
    """The SDK's `StreamableHTTPTransport`, which learns the session id from the server's answer."""

    def transport(self) -> Transport:
        session_id = getattr(self.http, "session_id", None)
        return Transport(self.attributes, session_id=session_id if isinstance(session_id, str) else None)


_serving_stdio: ContextVar[bool] = ContextVar("opentelemetry_mcp_serving_stdio", default=False)
_opened: ContextVar[ClientTransport | None] = ContextVar("opentelemetry_mcp_opened_transport", default=None)


def stdio_transport() -> Transport:
    """`network.transport=pipe` inside the SDK's stdio server, else nothing (in-memory has no transport)."""
    return Transport(_PIPE) if _serving_stdio.get() else NO_TRANSPORT


def client_transport(state: SessionState) -> Transport:
    """The transport of a client session's messages."""
    return state.client.transport() if state.client is not None else NO_TRANSPORT


def take_client_transport() -> ClientTransport | None:
    """The client transport this task opened last, for the `ClientSession` being created; no later one gets it."""
    opened = _opened.get()
    if opened is not None:
        _opened.set(None)
    return opened


def network_attributes(attributes: Mapping[str, AttributeValue]) -> Attributes:
    """The `network.*` part: what all messages of a connection share (unlike the client's port)."""
    return {key: value for key, value in attributes.items() if key.startswith("network.")}


def _url_attributes(url: object) -> Attributes:
    attributes: Attributes = {NETWORK_TRANSPORT: NetworkTransportValues.TCP.value}
    if isinstance(url, str):
        with suppress(ValueError):
            parts = urlsplit(url)
            if parts.hostname:
                attributes[SERVER_ADDRESS] = parts.hostname
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
            if port is not None:
                attributes[SERVER_PORT] = port
    return attributes


class ServerEnding:
    """One of the SDK's async context managers whose exit ends a server's sessions (`stdio_server()`, the streamable
    HTTP session manager's `run()`, an SSE connection): the providers are flushed after it, so that a server stopped
    right after (its client kills it, uvicorn re-raises SIGTERM) loses nothing. The body of `stdio_server()` runs
    marked as served over a pipe."""

    def __init__(self, manager: Any, flush: Callable[[], None], *, stdio: bool = False) -> None:
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
            await flushed(self._flush)


def ending(flush: Callable[[], None], *, stdio: bool = False) -> Wrapper:
    """A wrapper of a function returning one of the SDK's server context managers: see `ServerEnding`."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ServerEnding:
        if stdio:
            guarded("checking the exporters", warn_on_stdio, None)
        return ServerEnding(wrapped(*args, **kwargs), flush, stdio=stdio)

    return wrapper


def _noting(transport: Callable[[tuple[Any, ...]], ClientTransport]) -> Wrapper:
    """A wrapper of a step of a client transport: notes the transport for the next session."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        guarded("noting a client transport", lambda: _opened.set(transport(args)), None)
        return wrapped(*args, **kwargs)

    return wrapper


def _http_transport_init(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """`StreamableHTTPTransport.__init__`: the transport knows its URL, and later its session id."""
    wrapped(*args, **kwargs)
    guarded("noting a client transport", lambda: _note_http(instance), None)


def _note_http(transport: Any) -> None:
    _opened.set(ClientTransport(_url_attributes(getattr(transport, "url", None)), http=transport))


_SERVER_FUNCTION = ("mcp.server.stdio", "stdio_server")
_REEXPORTS = ("mcp", "mcp.server.lowlevel.server", "mcp.server.fastmcp.server", "mcp.server.mcpserver.server")
"""Modules of the SDK that bind `stdio_server` by name; patched too when already imported."""

_CLIENT_STEPS = (
    Target("mcp.client.stdio", "_create_platform_compatible_process", _noting(lambda args: ClientTransport(_PIPE))),
    Target("mcp.client.streamable_http", "StreamableHTTPTransport.__init__", _http_transport_init),
    # the SSE stream's GET, which names the URL: `aconnect_sse(client, method, url)` in older 1.x ...
    Target("mcp.client.sse", "aconnect_sse", _noting(lambda args: ClientTransport(_url_attributes(args[2]))), True),
    # ... `sse_within_origin(client, url)` in newer ones and 2.x
    Target(
        "mcp.client.sse", "sse_within_origin", _noting(lambda args: ClientTransport(_url_attributes(args[1]))), True
    ),
)
"""Steps of the client transports."""


def transport_targets(flush: Callable[[], None]) -> list[Target]:
    """`stdio_server`, where the SDK defines it and where its modules already bound it, and the client steps."""
    module_name, name = _SERVER_FUNCTION
    original = getattr(importlib.import_module(module_name), name, None)
    reexports = [
        binder
        for binder in _REEXPORTS
        if original is not None and getattr(sys.modules.get(binder), name, None) is original
    ]
    stdio = ending(flush, stdio=True)
    return [
        Target(module_name, name, stdio),
        *(Target(binder, name, stdio, optional=True) for binder in reexports),
        *_CLIENT_STEPS,
    ]
