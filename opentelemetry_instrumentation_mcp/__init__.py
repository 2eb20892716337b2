"""OpenTelemetry instrumentation for the MCP (Model Context Protocol) Python SDK, mcp 1.x and 2.x.

Every MCP request and notification a side sends becomes a CLIENT span, and every one a side handles a SERVER span,
following the OpenTelemetry MCP semantic conventions; the sender's context travels in `params._meta`, so the
server's span continues the client's trace. Four duration histograms go with them.

Zero code::

    opentelemetry-instrument python server.py

Programmatic::

    from opentelemetry_instrumentation_mcp import McpInstrumentor

    McpInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

Every option is an `instrument()` argument and an environment variable (`environment_variables`). On mcp 2.x,
which traces itself, the SDK's own spans give way to ours while instrumented; `uninstrument()` gives the SDK its
own behaviour back.

How it is built: `_mcp1` and `_mcp2` are the adapters of the two SDK generations. Each names its patch targets and
reads the SDK's messages, results and errors into the neutral `_message.Message`; everything after that is written
once: `_wrappers` (what a wrapper does with a message), `_operation` (its span, outcome and metric), `_propagation`
(the parent and the `_meta` carrier), `_transport` (what the transport tells), `_conventions` (names, attributes,
error rules).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Collection
from importlib import metadata
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from opentelemetry_instrumentation_mcp._config import options
from opentelemetry_instrumentation_mcp._conventions import SCHEMA_URL, create_durations
from opentelemetry_instrumentation_mcp._frameworks import FrameworkPatch
from opentelemetry_instrumentation_mcp._operation import Operations, create_sides
from opentelemetry_instrumentation_mcp._patching import Patcher
from opentelemetry_instrumentation_mcp._propagation import IncomingContext
from opentelemetry_instrumentation_mcp._providers import provider_checks, provider_flush
from opentelemetry_instrumentation_mcp._transport import transport_targets
from opentelemetry_instrumentation_mcp._wrappers import SdkAdapter, SessionDurations, Wrappers
from opentelemetry_instrumentation_mcp.package import _instruments
from opentelemetry_instrumentation_mcp.version import __version__

__all__ = ["IncomingContext", "McpInstrumentor", "__version__"]

_logger = logging.getLogger(__name__)


def _adapter_module() -> Any:
    """The adapter of the installed mcp's generation, imported by name: each imports its own generation of the SDK,
    and each is type-checked against that generation only."""
    return importlib.import_module(f"{__name__}._mcp{metadata.version('mcp').split('.')[0]}")


class McpInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments the mcp SDK's sessions and request handlers."""

    _patcher: Patcher
    _frameworks: FrameworkPatch
    _operations: Operations

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        tracer_provider, meter_provider = kwargs.get("tracer_provider"), kwargs.get("meter_provider")
        tracer = trace.get_tracer(__name__, __version__, tracer_provider, schema_url=SCHEMA_URL)
        meter = metrics.get_meter(__name__, __version__, meter_provider, schema_url=SCHEMA_URL)
        adapter: type[SdkAdapter] = _adapter_module().Adapter
        durations = create_durations(meter)
        sides = create_sides(durations, adapter.read_fields, adapter.read_received_error, adapter.read_sent_error)
        configured = options(kwargs)
        self._operations = Operations(tracer, sides, configured, *provider_checks(tracer, meter))
        wrappers = Wrappers(self._operations, SessionDurations(durations))
        self._patcher = Patcher()
        self._frameworks = FrameworkPatch()
        try:
            targets = [
                *adapter(wrappers).targets(),
                *transport_targets(
                    provider_flush(tracer_provider, meter_provider),
                    inject_http_headers=configured.inject_http_headers,
                ),
            ]
            self._patcher.apply(targets)
        except Exception:
            _logger.warning("mcp instrumentation could not be applied; nothing is instrumented", exc_info=True)
            return
        self._frameworks.apply()

    def _uninstrument(self, **kwargs: Any) -> None:
        self._operations.active = False
        self._frameworks.remove()
        self._patcher.remove()
