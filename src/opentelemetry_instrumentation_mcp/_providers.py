"""The providers: whether anything records (with no SDK tracer or meter provider, given or global, only context is
passed on), and flushing them when a server ends."""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic

import anyio
from opentelemetry import metrics, trace
from opentelemetry.metrics import Meter, NoOpMeter
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.metrics._internal import _ProxyMeter
from opentelemetry.trace import NoOpTracer, ProxyTracer, Tracer

from opentelemetry_instrumentation_mcp._guard import guarded


def _traces(tracer: Tracer) -> bool:
    # a proxy (no global provider at `instrument()`) resolves to the global provider's tracer once there is one
    real = tracer._tracer if isinstance(tracer, ProxyTracer) else tracer
    return not isinstance(real, NoOpTracer)


def _measures(meter: Meter) -> bool:
    # a proxy meter is handed the global provider's meter when one is set
    real = meter._real_meter if isinstance(meter, _ProxyMeter) else meter
    return real is not None and not isinstance(real, NoOpMeter)


def _latched(records: Callable[[], bool], *, proxied: bool, traces: bool) -> Callable[[], bool]:
    """`records`, asked until it says yes, which then stands (a provider, once set, stays). Until then, where the
    answer rests on the API's proxies alone (`proxied`), no without asking while the global meter provider, and
    with `traces` the global tracer provider too, is not set."""
    configured = False

    def check() -> bool:
        nonlocal configured
        if configured:
            return True
        if proxied and metrics_internal._METER_PROVIDER is None and (not traces or trace._TRACER_PROVIDER is None):
            return False
        configured = records()
        return configured

    return check


def recording(tracer: Tracer, meter: Meter) -> tuple[Callable[[], bool], Callable[[], bool]]:
    """Checks of whether `tracer` or `meter` records, and whether `meter` does, which stay yes once they are.

    Asked per operation, so they must be cheap: while the API's proxies have no global provider to resolve to,
    two of its module globals say so; after that the proxies' own state is read, not the global providers (whose
    getters look the environment up on every call until one is set).
    """
    meter_proxy = isinstance(meter, _ProxyMeter)
    records = _latched(
        lambda: _traces(tracer) or _measures(meter),
        proxied=meter_proxy and isinstance(tracer, ProxyTracer),
        traces=True,
    )
    return records, _latched(lambda: _measures(meter), proxied=meter_proxy, traces=False)


FLUSH_SECONDS = 5.0
"""How long a server's end may wait for its telemetry to be exported, all providers together."""


def flusher(tracer_provider: object, meter_provider: object) -> Callable[[], None]:
    """Flushes the tracer and meter providers in use (those given to `instrument()`, else the global ones)."""

    def flush() -> None:
        deadline = monotonic() + FLUSH_SECONDS
        for provider in (
            tracer_provider or trace.get_tracer_provider(),
            meter_provider or metrics.get_meter_provider(),
        ):
            force_flush = getattr(provider, "force_flush", None)
            remaining = int((deadline - monotonic()) * 1000)
            if callable(force_flush) and remaining > 0:
                force_flush(timeout_millis=remaining)

    return flush


async def flushed(flush: Callable[[], None]) -> None:
    """Run `flush` in a worker thread (an exporter may block), to its end even while the caller is cancelled."""
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(guarded, "flushing the providers", flush, None)
