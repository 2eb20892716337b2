"""The options of `instrument()`, each from its argument or else its environment variable."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry_instrumentation_mcp._propagation import IncomingContext
from opentelemetry_instrumentation_mcp.environment_variables import OTEL_PYTHON_MCP_INCOMING_CONTEXT

_logger = logging.getLogger("opentelemetry_instrumentation_mcp")


def incoming_context(kwargs: Mapping[str, Any]) -> IncomingContext:
    """The `incoming_context=` argument, else `OTEL_PYTHON_MCP_INCOMING_CONTEXT`, else `parent`."""
    if "incoming_context" in kwargs:
        value, source = kwargs["incoming_context"], "the incoming_context argument"
    else:
        value, source = os.environ.get(OTEL_PYTHON_MCP_INCOMING_CONTEXT, ""), OTEL_PYTHON_MCP_INCOMING_CONTEXT
    if isinstance(value, IncomingContext):
        return value
    text = str(value).strip().lower()
    if not text:
        return IncomingContext.PARENT
    try:
        return IncomingContext(text)
    except ValueError:
        choices = ", ".join(policy.value for policy in IncomingContext)
        _logger.warning("%s=%r is not one of %s; using parent", source, value, choices)
        return IncomingContext.PARENT
