"""The options of `instrument()`, each from its argument or else its environment variable, read once.

A bad value logs one warning naming its source and falls back to the default: it never stops the host.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry_instrumentation_mcp._propagation import IncomingContext
from opentelemetry_instrumentation_mcp.environment_variables import (
    OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT,
    OTEL_PYTHON_MCP_CONTENT_MAX_LENGTH,
    OTEL_PYTHON_MCP_ENRICH_TOOL_SPANS,
    OTEL_PYTHON_MCP_EXCLUDED_METHODS,
    OTEL_PYTHON_MCP_INCOMING_CONTEXT,
    OTEL_PYTHON_MCP_INJECT_HTTP_HEADERS,
    OTEL_PYTHON_MCP_REQUEST_HOOK,
    OTEL_PYTHON_MCP_RESPONSE_HOOK,
)

_logger = logging.getLogger("opentelemetry_instrumentation_mcp")

Hook = Callable[..., Any]
T = TypeVar("T")

DEFAULT_CONTENT_MAX_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class Options:
    """What `instrument()` was told."""

    incoming_context: IncomingContext = IncomingContext.PARENT
    excluded_methods: frozenset[str] = frozenset()
    capture_content: bool = False
    content_max_length: int = DEFAULT_CONTENT_MAX_LENGTH
    request_hook: Hook | None = None
    response_hook: Hook | None = None
    inject_http_headers: bool = True
    enrich_tool_spans: bool = True


def _option(kwargs: Mapping[str, Any], argument: str, variable: str, parse: Callable[[Any], T], default: T) -> T:
    if argument in kwargs:
        value, source = kwargs[argument], f"the {argument} argument"
    elif os.environ.get(variable, "").strip():
        value, source = os.environ[variable], variable
    else:
        return default
    try:
        return parse(value)
    except (ValueError, TypeError, ImportError, AttributeError) as error:
        _logger.warning("%s=%r is not usable (%s); using the default", source, value, error)
        return default


def _incoming_context(value: Any) -> IncomingContext:
    if isinstance(value, IncomingContext):
        return value
    try:
        return IncomingContext(str(value).strip().lower())
    except ValueError:
        choices = ", ".join(policy.value for policy in IncomingContext)
        raise ValueError(f"not one of {choices}") from None


def _methods(value: Any) -> frozenset[str]:
    names: Iterable[Any] = value.split(",") if isinstance(value, str) else value
    return frozenset(name.strip() for name in names if isinstance(name, str) and name.strip())


_CAPTURE_MODES = {"span_only": True, "span_and_event": True, "event_only": False, "no_content": False}
"""`opentelemetry-util-genai`'s content capturing modes (case-insensitive), and whether each puts content on
spans. This package emits no events: `EVENT_ONLY` records nothing. util-genai itself is not a dependency: its
releases that know these modes require opentelemetry-api 1.43, above this package's lower bound."""


_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _boolean(value: Any) -> bool:
    """`true`/`false` (and 1/0, yes/no, on/off), any case."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError("not true or false")


def _capture_content(value: Any) -> bool:
    """Whether to record content on spans: `true`/`false` (and 1/0, yes/no, on/off), or a util-genai mode."""
    text = str(value).strip().lower()
    if isinstance(value, bool) or text in _TRUE or text in _FALSE:
        return _boolean(value)
    if text in _CAPTURE_MODES:
        return _CAPTURE_MODES[text]
    raise ValueError("not true, false, " + ", ".join(mode.upper() for mode in _CAPTURE_MODES))


def _length(value: Any) -> int:
    length = int(value)
    if length < 1:
        raise ValueError("not a positive number")
    return length


def _hook(value: Any) -> Hook:
    if callable(value):
        return value  # type: ignore[no-any-return]
    module, _, name = str(value).partition(":")
    hook = getattr(importlib.import_module(module.strip()), name.strip())
    if not callable(hook):
        raise TypeError("not callable")
    return hook  # type: ignore[no-any-return]


def options(kwargs: Mapping[str, Any]) -> Options:
    """The options from `instrument()`'s arguments, else the environment, else the defaults."""
    return Options(
        incoming_context=_option(
            kwargs, "incoming_context", OTEL_PYTHON_MCP_INCOMING_CONTEXT, _incoming_context, IncomingContext.PARENT
        ),
        excluded_methods=_option(kwargs, "excluded_methods", OTEL_PYTHON_MCP_EXCLUDED_METHODS, _methods, frozenset()),
        capture_content=_option(
            kwargs, "capture_content", OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, _capture_content, False
        ),
        content_max_length=_option(
            kwargs, "content_max_length", OTEL_PYTHON_MCP_CONTENT_MAX_LENGTH, _length, DEFAULT_CONTENT_MAX_LENGTH
        ),
        request_hook=_option(kwargs, "request_hook", OTEL_PYTHON_MCP_REQUEST_HOOK, _hook, None),
        response_hook=_option(kwargs, "response_hook", OTEL_PYTHON_MCP_RESPONSE_HOOK, _hook, None),
        inject_http_headers=_option(kwargs, "inject_http_headers", OTEL_PYTHON_MCP_INJECT_HTTP_HEADERS, _boolean, True),
        enrich_tool_spans=_option(kwargs, "enrich_tool_spans", OTEL_PYTHON_MCP_ENRICH_TOOL_SPANS, _boolean, True),
    )
