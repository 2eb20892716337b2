"""OpenTelemetry instrumentation for the MCP (Model Context Protocol) Python SDK, mcp 1.x and 2.x.

Every MCP request and notification a server handles becomes a SERVER span that follows the OpenTelemetry
MCP semantic conventions, parented to the trace context the client sent in `params._meta`.

Zero code::

    opentelemetry-instrument python server.py

Programmatic::

    from opentelemetry_instrumentation_mcp import McpInstrumentor

    McpInstrumentor().instrument(tracer_provider=tracer_provider)

On mcp 2.x, which traces itself, the SDK's own server spans are replaced by ours while instrumented;
`McpInstrumentor().uninstrument()` gives the SDK its own behaviour back.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Collection
from importlib import metadata
from typing import Any, Protocol, cast

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.semconv.schemas import Schemas

from opentelemetry_instrumentation_mcp._config import options
from opentelemetry_instrumentation_mcp._frameworks import FrameworkPatch
from opentelemetry_instrumentation_mcp._http import http_targets
from opentelemetry_instrumentation_mcp._metrics import Metrics
from opentelemetry_instrumentation_mcp._operation import Telemetry
from opentelemetry_instrumentation_mcp._patching import Patcher, Target
from opentelemetry_instrumentation_mcp._propagation import IncomingContext
from opentelemetry_instrumentation_mcp._providers import flusher, recording
from opentelemetry_instrumentation_mcp._transport import transport_targets
from opentelemetry_instrumentation_mcp.package import _instruments
from opentelemetry_instrumentation_mcp.version import __version__

__all__ = ["IncomingContext", "McpInstrumentor", "__version__"]

_logger = logging.getLogger(__name__)

_SCHEMA_URL = Schemas.V1_40_0.value
"""The semantic conventions whose names the spans and metrics carry: pinned, so that upgrading the semconv package
for another reason changes nothing (1.40.0 is the newest the oldest supported package, 0.61b0, knows)."""


class _Generation(Protocol):
    def targets(self) -> list[Target]: ...


def _sdk_patches(telemetry: Telemetry) -> _Generation:
    """The one seam between SDK generations: the patch set for the installed mcp (`_v1` or `_v2`).

    Imported by name at run time: each module imports its own generation of the SDK, and each is type-checked
    against that generation only.
    """
    generation = "_v1" if metadata.version("mcp").startswith("1.") else "_v2"
    module = importlib.import_module(f"{__name__}.{generation}")
    return cast(_Generation, module.Patches(telemetry))


class McpInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments the mcp SDK's sessions and request handlers."""

    _patcher: Patcher
    _frameworks: FrameworkPatch
    _telemetry: Telemetry

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        tracer = trace.get_tracer(__name__, __version__, kwargs.get("tracer_provider"), schema_url=_SCHEMA_URL)
        meter = metrics.get_meter(__name__, __version__, kwargs.get("meter_provider"), schema_url=_SCHEMA_URL)
        self._telemetry = Telemetry(tracer, Metrics(meter), options(kwargs), *recording(tracer, meter))
        flush = flusher(kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        self._patcher = Patcher()
        self._frameworks = FrameworkPatch()
        try:
            targets = [*_sdk_patches(self._telemetry).targets(), *transport_targets(flush), *http_targets(flush)]
            self._patcher.apply(targets)
        except Exception:
            _logger.warning("mcp instrumentation could not be applied; nothing is instrumented", exc_info=True)
            return
        self._frameworks.apply()

    def _uninstrument(self, **kwargs: Any) -> None:
        self._telemetry.active = False
        self._frameworks.remove()
        self._patcher.remove()
