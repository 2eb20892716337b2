"""The stdio transport, and the `network.*` attributes transports share."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from contextlib import suppress
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.semconv.attributes.network_attributes import NETWORK_TRANSPORT, NetworkTransportValues
from opentelemetry.util.types import AttributeValue
from wrapt import wrap_function_wrapper

from opentelemetry_instrumentation_mcp._message import NO_TRANSPORT, Transport

Attributes = dict[str, AttributeValue]

_serving_stdio: ContextVar[bool] = ContextVar("opentelemetry_mcp_serving_stdio", default=False)
_PIPE = Transport({NETWORK_TRANSPORT: NetworkTransportValues.PIPE.value})


def stdio_transport() -> Transport:
    """`network.transport=pipe` inside the SDK's stdio server, else nothing (in-memory has no transport)."""
    return _PIPE if _serving_stdio.get() else NO_TRANSPORT


def network_attributes(attributes: Mapping[str, AttributeValue]) -> Attributes:
    """The `network.*` part: what all messages of a connection share (unlike the client's port)."""
    return {key: value for key, value in attributes.items() if key.startswith("network.")}


class MarkStdio:
    """Wraps the SDK's `stdio_server()` context manager: what is served inside it is served over a pipe.

    The mark is set before the SDK's context is entered, so the tasks the SDK spawns to read stdin carry it
    too (mcp 2.x runs handlers in the context of the task that read the message).
    """

    def __init__(self, manager: Any) -> None:
        self._manager = manager
        self._token: Token[bool] | None = None

    async def __aenter__(self) -> Any:
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


def wrap_stdio_server(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> MarkStdio:
    """wrapt wrapper for `stdio_server`."""
    return MarkStdio(wrapped(*args, **kwargs))


_STDIO_MODULE = "mcp.server.stdio"
_STDIO_REEXPORTS = ("mcp", "mcp.server.lowlevel.server", "mcp.server.fastmcp.server", "mcp.server.mcpserver.server")
"""Modules of the SDK that bind `stdio_server` by name; patched too when already imported."""


class StdioPatch:
    """Wraps `stdio_server` where the SDK defines it and where its modules already bound the name."""

    def __init__(self) -> None:
        self._modules: list[str] = []

    def apply(self) -> None:
        original = importlib.import_module(_STDIO_MODULE).stdio_server
        self._modules = [_STDIO_MODULE] + [
            name
            for name in _STDIO_REEXPORTS
            if name in sys.modules and getattr(sys.modules[name], "stdio_server", None) is original
        ]
        for name in self._modules:
            wrap_function_wrapper(name, "stdio_server", wrap_stdio_server)

    def remove(self) -> None:
        for name in self._modules:
            unwrap(sys.modules[name], "stdio_server")
        self._modules = []
