"""What this package reads of OpenTelemetry's private state, in one place, each with why no public API serves.

Every read is best effort: a release that moves one of these names costs the feature that reads it, never the host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextvars import ContextVar, Token

from opentelemetry import context as context_api
from opentelemetry import metrics, trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.instrumentation.utils import _SUPPRESS_INSTRUMENTATION_KEY_PLAIN
from opentelemetry.metrics import Meter
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.metrics._internal import _ProxyMeter
from opentelemetry.trace import ProxyTracer, Tracer
from opentelemetry.trace.propagation import _SPAN_KEY


def _context_variable() -> ContextVar[Context] | None:
    runtime = getattr(context_api, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None) if type(runtime) is ContextVarsRuntimeContext else None
    return variable if isinstance(variable, ContextVar) else None


_CONTEXT = _context_variable()
"""The context variable behind the API's default runtime context (`_RUNTIME_CONTEXT._current_context`).

The API's `get_current`, `attach` and `detach` reach it through two Python calls each, and `is_instrumentation_enabled`
through six, several times per message; the variable's own methods make none. With another runtime context
(`OTEL_PYTHON_CONTEXT`), the API's functions serve."""

current_context: Callable[[], Context] = _CONTEXT.get if _CONTEXT is not None else context_api.get_current
"""`opentelemetry.context.get_current`."""
attach: Callable[[Context], Token[Context]] = _CONTEXT.set if _CONTEXT is not None else context_api.attach
"""`opentelemetry.context.attach`."""
detach: Callable[[Token[Context]], None] = _CONTEXT.reset if _CONTEXT is not None else context_api.detach
"""`opentelemetry.context.detach`, except that a token of another context raises (the API logs it)."""


SPAN_KEY = _SPAN_KEY
"""The key of a context's span (`trace.get_current_span(context)` reads it through two calls): read with
`context.get(SPAN_KEY)` where that weighs, with the API's check that the value is a `Span`."""


def instrumentation_suppressed() -> bool:
    """`not opentelemetry.instrumentation.utils.is_instrumentation_enabled()`: whether the current context holds
    either of its suppression keys, read at once."""
    context = current_context()
    return bool(context.get(_SUPPRESS_INSTRUMENTATION_KEY) or context.get(_SUPPRESS_INSTRUMENTATION_KEY_PLAIN))


def unless_global_providers_unset(ask: Callable[[], bool], *, traces: bool) -> Callable[[], bool]:
    """`ask`, answered False without calling it while the API's global meter provider, and with `traces` its global
    tracer provider, are still unset.

    The public getters look the environment up on every call until a provider is set, too slow to ask per message:
    the API's own module globals (`_METER_PROVIDER`, `_TRACER_PROVIDER`) say it at the cost of two reads, in the one
    frame of the function returned."""

    def asking_unless_unset() -> bool:
        if metrics_internal._METER_PROVIDER is None and (not traces or trace._TRACER_PROVIDER is None):
            return False
        return ask()

    return asking_unless_unset


def is_meter_proxy(meter: Meter) -> bool:
    """Whether `meter` is the API's proxy, handed out before a global meter provider is set (`_ProxyMeter`, whose
    class the API does not export)."""
    return isinstance(meter, _ProxyMeter)


def resolved_tracer(tracer: Tracer) -> Tracer:
    """The tracer a `ProxyTracer` hands its spans to (`_tracer`: the global provider's, once one is set); the API
    tells no other way whether a proxy has anything behind it."""
    return tracer._tracer if isinstance(tracer, ProxyTracer) else tracer


def resolved_meter(meter: Meter) -> Meter | None:
    """The meter a proxy meter hands its instruments to (`_real_meter`, None until a global provider is set)."""
    return meter._real_meter if isinstance(meter, _ProxyMeter) else meter


def global_exporters() -> Iterator[object]:
    """The exporters behind the global SDK providers (the SDK lists processors and readers nowhere public): the
    span processors' (`_active_span_processor._span_processors`; a `SimpleSpanProcessor`'s `span_exporter`, a
    `BatchSpanProcessor`'s `_batch_processor._exporter`) and the metric readers' (`_metric_readers`, `_exporter`)."""
    span_processors = getattr(
        getattr(trace.get_tracer_provider(), "_active_span_processor", None), "_span_processors", ()
    )
    for processor in span_processors:
        yield getattr(processor, "span_exporter", None)
        yield getattr(getattr(processor, "_batch_processor", None), "_exporter", None)
    for reader in getattr(metrics.get_meter_provider(), "_metric_readers", ()):
        yield getattr(reader, "_exporter", None)
