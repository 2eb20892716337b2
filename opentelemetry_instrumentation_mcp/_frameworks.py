"""Frameworks that trace MCP themselves step aside while we are instrumented, as the mcp 2.x SDK's own tracing
does: one CLIENT and one SERVER span per message, ours.

FastMCP 4 has a switch: its `telemetry_mode()`, read at every use, is reported as `propagation_only` where it
would be `native` (FastMCP then makes no spans; `off` is left as it is). FastMCP 3 has none: the tracer its
client and server telemetry modules look up per span makes no CLIENT or SERVER span there and leaves the current
context alone (its INTERNAL spans, such as `delegate`, stay). FastMCP 2 makes no spans.

The patches are applied when FastMCP is imported, before or after `instrument()`, and removed by `remove()`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Tracer
from wrapt import register_post_import_hook

from opentelemetry_instrumentation_mcp._guard import guarded
from opentelemetry_instrumentation_mcp._patching import Patcher, Target

_MCP_KINDS = (SpanKind.CLIENT, SpanKind.SERVER)


class _WithoutMcpSpans(Tracer):
    """A tracer that makes no CLIENT or SERVER span and attaches nothing in their place."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    def start_span(self, *args: Any, **kwargs: Any) -> Span:
        return self._tracer.start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        kind = kwargs.get("kind", args[2] if len(args) > 2 else SpanKind.INTERNAL)
        if kind in _MCP_KINDS:
            return _no_span()
        return self._tracer.start_as_current_span(*args, **kwargs)


@contextmanager
def _no_span() -> Iterator[Span]:
    yield INVALID_SPAN


def _without_mcp_spans(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tracer:
    return _WithoutMcpSpans(wrapped(*args, **kwargs))


def _propagation_only(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    mode = wrapped(*args, **kwargs)
    return "propagation_only" if mode == "native" else mode


def _is_fastmcp4() -> bool:
    """Whether the FastMCP being imported has the switch (its `fastmcp.telemetry`, imported first, says)."""
    telemetry = sys.modules.get("fastmcp.telemetry")
    return callable(getattr(telemetry, "telemetry_mode", None))


_TARGETS = (
    (
        Target(
            "fastmcp.telemetry",
            "telemetry_mode",
            _propagation_only,
            optional=True,
            why="FastMCP 4's switch, read at every use: `native` makes its own MCP spans",
        ),
        True,
    ),
    (
        Target(
            "fastmcp.server.telemetry",
            "telemetry_mode",
            _propagation_only,
            optional=True,
            why="the same switch, bound by name in its server telemetry",
        ),
        True,
    ),
    (
        Target(
            "fastmcp.client.telemetry",
            "get_tracer",
            _without_mcp_spans,
            optional=True,
            why="FastMCP 3 has no switch: its client spans come from the tracer this returns",
        ),
        False,
    ),
    (
        Target(
            "fastmcp.server.telemetry",
            "get_tracer",
            _without_mcp_spans,
            optional=True,
            why="FastMCP 3 has no switch: its server spans come from the tracer this returns",
        ),
        False,
    ),
)
"""Each target, and whether it is FastMCP 4's; each module binds the name for itself."""


class FrameworkPatch:
    """Makes FastMCP's own MCP spans step aside, from its import (or now, if imported) until `remove()`."""

    def __init__(self) -> None:
        self._active = False
        self._patcher = Patcher()

    def apply(self) -> None:
        self._active = True
        for module_name in dict.fromkeys(target.module for target, _ in _TARGETS):
            register_post_import_hook(self._patch_when_imported, module_name)

    def _patch_when_imported(self, module: ModuleType) -> None:
        if self._active:
            guarded("quieting FastMCP's own spans", lambda: self._patch(module), None)

    def _patch(self, module: ModuleType) -> None:
        fastmcp4 = _is_fastmcp4()
        self._patcher.apply(
            target for target, of_fastmcp4 in _TARGETS if target.module == module.__name__ and of_fastmcp4 is fastmcp4
        )

    def remove(self) -> None:
        self._active = False
        self._patcher.remove()
