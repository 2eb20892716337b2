"""Which transport a message travels on, told by the SDK's transport context managers.

The SDK's transports are async context managers (`stdio_server()`, `stdio_client()`,
`streamable_http_client()`, `sse_client()`); everything a session does inside one travels on it. Each is
wrapped so that its body runs with a context variable naming the transport: the mark is set before the SDK's
own context is entered, so the tasks the SDK spawns there carry it too (mcp 2.x runs handlers in the context
of the task that read the message).
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

from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.semconv.attributes.network_attributes import NETWORK_TRANSPORT, NetworkTransportValues
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.util.types import AttributeValue
from wrapt import wrap_function_wrapper

from opentelemetry_instrumentation_mcp._message import NO_TRANSPORT, Transport

Attributes = dict[str, AttributeValue]

_PIPE: Attributes = {NETWORK_TRANSPORT: NetworkTransportValues.PIPE.value}
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(slots=True)
class ClientTransport:
    """The transport of the client sessions opened inside a client transport's context manager."""

    attributes: Attributes
    http: Any = None
    """The SDK's `StreamableHTTPTransport`, which learns the session id from the server's answer."""

    def transport(self) -> Transport:
        session_id = getattr(self.http, "session_id", None)
        return Transport(self.attributes, session_id=session_id if isinstance(session_id, str) else None)


_serving_stdio: ContextVar[bool] = ContextVar("opentelemetry_mcp_serving_stdio", default=False)
_client_transport: ContextVar[ClientTransport | None] = ContextVar("opentelemetry_mcp_client_transport", default=None)


def stdio_transport() -> Transport:
    """`network.transport=pipe` inside the SDK's stdio server, else nothing (in-memory has no transport)."""
    return Transport(_PIPE) if _serving_stdio.get() else NO_TRANSPORT


def client_transport() -> Transport:
    """The transport of the client transport context manager this code runs in, else nothing."""
    current = _client_transport.get()
    return current.transport() if current is not None else NO_TRANSPORT


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


class _Marked:
    """An SDK transport context manager whose body runs with a context variable set."""

    def __init__(self, manager: Any, variable: ContextVar[Any], value: object) -> None:
        self._manager = manager
        self._variable = variable
        self._value = value
        self._token: Token[Any] | None = None

    async def __aenter__(self) -> Any:
        self._token = self._variable.set(self._value)
        return await self._manager.__aenter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        try:
            return bool(await self._manager.__aexit__(exc_type, exc, tb))
        finally:
            if self._token is not None:
                with suppress(ValueError):  # exited in another context than it was entered in
                    self._variable.reset(self._token)


def _first_argument(args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> object:
    return args[0] if args else kwargs.get(name)


def _stdio_server(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Marked:
    return _Marked(wrapped(*args, **kwargs), _serving_stdio, True)


def _stdio_client(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Marked:
    return _Marked(wrapped(*args, **kwargs), _client_transport, ClientTransport(_PIPE))


def _http_client(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Marked:
    url = _first_argument(args, kwargs, "url")
    return _Marked(wrapped(*args, **kwargs), _client_transport, ClientTransport(_url_attributes(url)))


def _http_transport_init(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """`StreamableHTTPTransport.__init__`: the client transport it is created in learns of it."""
    wrapped(*args, **kwargs)
    current = _client_transport.get()
    if current is not None:
        current.http = instance


Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]

_FUNCTIONS: tuple[tuple[str, str, Wrapper], ...] = (
    ("mcp.server.stdio", "stdio_server", _stdio_server),
    ("mcp.client.stdio", "stdio_client", _stdio_client),
    ("mcp.client.streamable_http", "streamable_http_client", _http_client),
    ("mcp.client.streamable_http", "streamablehttp_client", _http_client),
    ("mcp.client.sse", "sse_client", _http_client),
)
"""Transport context managers: (defining module, name, wrapper)."""

_REEXPORTS = (
    "mcp",
    "mcp.client.client",
    "mcp.client.session_group",
    "mcp.server.lowlevel.server",
    "mcp.server.fastmcp.server",
    "mcp.server.mcpserver.server",
)
"""Modules of the SDK that bind those names themselves; patched too when already imported."""

_HTTP_TRANSPORT = ("mcp.client.streamable_http", "StreamableHTTPTransport.__init__")


class TransportPatch:
    """Wraps the transport context managers where the SDK defines them and where its modules bound them."""

    def __init__(self) -> None:
        self._wrapped: list[tuple[str, str]] = []

    def apply(self) -> None:
        for module_name, name, wrapper in _FUNCTIONS:
            original = getattr(importlib.import_module(module_name), name, None)
            if original is None:  # a name this SDK release does not have
                continue
            owners = [module_name] + [
                reexport
                for reexport in _REEXPORTS
                if reexport in sys.modules and getattr(sys.modules[reexport], name, None) is original
            ]
            for owner in owners:
                wrap_function_wrapper(owner, name, wrapper)
                self._wrapped.append((owner, name))
        wrap_function_wrapper(*_HTTP_TRANSPORT, _http_transport_init)

    def remove(self) -> None:
        for owner, name in self._wrapped:
            unwrap(sys.modules[owner], name)
        self._wrapped = []
        module_name, attribute = _HTTP_TRANSPORT
        unwrap(getattr(importlib.import_module(module_name), attribute.split(".")[0]), "__init__")
